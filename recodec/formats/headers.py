"""Headers of PNG, WebP and JPEG 2000: image sizes read before any pixel is decoded."""

from __future__ import annotations

from recodec.errors import DecodeError
from recodec.formats.magic import J2K_SOC_SIZ

# IEND always has length 0 and the same CRC
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"

def check_png_complete(data: bytes) -> None:
    """Raise DecodeError unless the PNG has its IEND chunk: libpng decodes a file cut after IDAT."""
    if _PNG_IEND not in data:
        raise DecodeError("PNG is truncated (no IEND chunk)")


def png_header(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, bit depth, colour type) from the IHDR chunk."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise DecodeError("PNG is truncated or has no IHDR chunk first")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return height, width, data[24], data[25]


def webp_header(data: bytes) -> tuple[int, int]:
    """(height, width) of a WebP from its first chunk (the canvas, for an extended file)."""
    if len(data) < 30:
        raise DecodeError("WebP is truncated")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise DecodeError("corrupt WebP (bad VP8 start code)")
        return int.from_bytes(data[28:30], "little") & 0x3FFF, int.from_bytes(data[26:28], "little") & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise DecodeError("corrupt WebP (bad VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":  # the canvas size; animation frames are counted by content.webp_info
        return int.from_bytes(data[27:30], "little") + 1, int.from_bytes(data[24:27], "little") + 1
    raise DecodeError(f"corrupt WebP (unknown first chunk {chunk!r})")


def j2k_codestream(data: bytes) -> bytes:
    """The J2K codestream of a JP2 file (its jp2c box) or of a bare codestream."""
    if data[:4] == J2K_SOC_SIZ:
        return data
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        if kind == b"jp2c":
            return data[pos + header:pos + size]
        pos += size
    raise DecodeError("JP2 file has no (complete) codestream box")


def j2k_header(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, precision of component 0) from the SIZ marker."""
    cs = j2k_codestream(data)
    if cs[:4] != J2K_SOC_SIZ or len(cs) < 45:
        raise DecodeError("JPEG 2000 codestream is truncated or has no SIZ marker")
    x, y, x0, y0 = (int.from_bytes(cs[o:o + 4], "big") for o in (8, 12, 16, 20))
    components = int.from_bytes(cs[40:42], "big")
    return y - y0, x - x0, components, (cs[42] & 0x7F) + 1
