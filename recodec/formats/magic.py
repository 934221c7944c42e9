"""One table of magic signatures: source sniffing and every codec's ``sniff`` ask it.

Formats are recognised by their first bytes only, never by file name.
"""

from __future__ import annotations

from collections.abc import Callable

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8\xff"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
JXL_CODESTREAM = b"\xff\x0a"
JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
#: ISO-BMFF brands that mark an AVIF file in its ftyp box.
AVIF_BRANDS = (b"avif", b"avis")
LERC_MAGICS = (b"Lerc2 ", b"CntZImage ")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BANDPACK_MAGIC = b"RCBP"
LEARNED_MAGIC = b"RCLC"
RNN_MAGIC = b"RCRN"
OVERFIT_MAGIC = b"RCOF"

def is_jpegls(data: bytes) -> bool:
    """True for a JPEG-LS stream: SOI, then its frame marker (SOF55, FF F7) before any other SOF."""
    if data[:2] != b"\xff\xd8":
        return False
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xF7:
            return True
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return False
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


#: Format name -> predicate on the first bytes.  Source formats use the names ``read_image`` reports.
SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "PNG": lambda d: d[:8] == PNG_SIGNATURE,
    "JPEG": lambda d: d[:3] == JPEG_SOI and not is_jpegls(d),  # JPEG-LS shares the SOI marker
    "JPEGLS": is_jpegls,
    "WEBP": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    "TIFF": lambda d: d[:4] in TIFF_MAGICS,
    "JP2": lambda d: d[:12] == JP2_SIGNATURE,
    "J2K": lambda d: d[:4] == J2K_SOC_SIZ,
    "JXL": lambda d: d[:2] == JXL_CODESTREAM or d[:12] == JXL_CONTAINER,
    "AVIF": lambda d: d[4:8] == b"ftyp" and d[8:12] in AVIF_BRANDS,
    "LERC": lambda d: d.startswith(LERC_MAGICS),
    "ZSTD": lambda d: d[:4] == ZSTD_MAGIC,
    "BANDPACK": lambda d: d[:4] == BANDPACK_MAGIC and len(d) >= 9,
    "LEARNED": lambda d: d[:4] == LEARNED_MAGIC,
    "RNN": lambda d: d[:4] == RNN_MAGIC,
    "OVERFIT": lambda d: d[:4] == OVERFIT_MAGIC,
}

#: Recognisable formats that are refused as sources, named in the error so an operator knows what it was.
REFUSED = (
    (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS (DOS binary)"),
    (b"GIF8", "GIF"), (b"BM", "BMP"), (b"<?xml", "XML/SVG"), (b"<svg", "SVG"), (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "Photoshop PSD"), (b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "gzip"),
)


def is_format(name: str, data: bytes) -> bool:
    """True when ``data`` starts with the signature of format ``name`` (a key of :data:`SIGNATURES`)."""
    return SIGNATURES[name](data)


def identify(data: bytes, among: tuple[str, ...] | None = None) -> str | None:
    """The first format of ``among`` (default: all) whose signature ``data`` has, or None."""
    for name in among or tuple(SIGNATURES):
        if SIGNATURES[name](data):
            return name
    return None


def refused_format(data: bytes) -> str | None:
    """The name of a recognisable but refused format (PDF, EPS, GIF...), or None."""
    head = data[:64].lstrip()
    for magic, what in REFUSED:
        if data.startswith(magic) or head.startswith(magic):
            return what
    return None


def is_tiff(data: bytes) -> bool:
    """True when ``data`` starts with a classic or BigTIFF header."""
    return is_format("TIFF", data)
