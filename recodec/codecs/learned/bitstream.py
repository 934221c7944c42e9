"""The self-describing container of the learned codecs.

Layout (big-endian)::

    magic       4s   b"RCLC"
    version     B    FORMAT_VERSION
    model id    B    1 = factorized, 2 = hyperprior
    weights     32s  SHA-256 of the weights file that wrote it
    quality     B    1..N
    bands       B    1 (gray, coded as replicated RGB) or 3
    height      I
    width       I
    tile        H    tile edge in pixels (multiple of 64)
    tiles       I    number of tiles, row-major
    body crc    I    CRC-32 of everything after the header
    body:       per tile: u32 length + range-coder words (little-endian uint32)
                then optional extensions: u8 tag + u32 length + payload (any number, any order)

Extensions carry what a decoder may use but the pixels of the plain decode never depend on
(:data:`EXTENSION_TAGS`); a decoder skips the tags it does not know.  Streams without extensions
are byte-for-byte what format version 1 always wrote; recodec before session 17 rejects those
with extensions ("trailing bytes").  The file size, header and extensions included, is what bpp
counts.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from recodec.errors import DecodeError, ImageTooLargeError
from recodec.formats.magic import LEARNED_MAGIC

MAGIC = LEARNED_MAGIC
FORMAT_VERSION = 1
MODEL_IDS = {"factorized": 1, "hyperprior": 2}
_HEADER = struct.Struct(">4sBB32sBBIIHII")
HEADER_SIZE = _HEADER.size
_LEN = struct.Struct(">I")
_EXT = struct.Struct(">BI")
#: Extension tags: 1 = texture energies per block, for the GAN decoder
#: (:mod:`recodec.codecs.generative.texture`).
EXTENSION_TAGS = {"texture": 1}
#: Same default as recodec.imageio: a header may not claim more pixels than this.
MAX_PIXELS = 400_000_000


@dataclass(frozen=True)
class Header:
    """Parsed container header."""

    model: str
    weights_sha256: bytes
    quality: int
    bands: int
    height: int
    width: int
    tile: int

    def tile_grid(self) -> tuple[int, int]:
        """(rows, columns) of tiles."""
        return math.ceil(self.height / self.tile), math.ceil(self.width / self.tile)


def pack(header: Header, tiles: list[bytes], extensions: dict[int, bytes] | None = None) -> bytes:
    """Serialise a header, the tile payloads and ``{tag: payload}`` extensions."""
    body = b"".join(_LEN.pack(len(t)) + t for t in tiles)
    body += b"".join(_EXT.pack(tag, len(p)) + p for tag, p in sorted((extensions or {}).items()))
    head = _HEADER.pack(MAGIC, FORMAT_VERSION, MODEL_IDS[header.model], header.weights_sha256,
                        header.quality, header.bands, header.height, header.width, header.tile,
                        len(tiles), zlib.crc32(body))
    return head + body


def without_extensions(data: bytes) -> bytes:
    """The same container with its extension records dropped: what the plain codec writes."""
    return pack(*unpack(data))


def unpack(data: bytes) -> tuple[Header, list[bytes]]:
    """Parse and validate a container; every inconsistency is a :class:`DecodeError`."""
    header, tiles, _ = parse(data)
    return header, tiles


def parse(data: bytes) -> tuple[Header, list[bytes], dict[int, bytes]]:
    """(header, tile payloads, ``{tag: payload}`` extensions) of a validated container."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"learned: {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, model_id, sha, quality, bands, height, width, tile, count, crc = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("learned: bad magic bytes")
    if version != FORMAT_VERSION:
        raise DecodeError(f"learned: unsupported format version {version}")
    models = {v: k for k, v in MODEL_IDS.items()}
    if model_id not in models:
        raise DecodeError(f"learned: unknown model id {model_id}")
    if bands not in (1, 3) or height == 0 or width == 0 or tile == 0 or tile % 64:
        raise DecodeError(f"learned: invalid header (bands={bands}, {height}x{width}, tile={tile})")
    if height * width > MAX_PIXELS:
        raise ImageTooLargeError(f"learned: header declares {height}x{width} pixels")
    header = Header(models[model_id], sha, quality, bands, height, width, tile)
    rows, cols = header.tile_grid()
    if count != rows * cols:
        raise DecodeError(f"learned: {count} tiles for a {rows}x{cols} grid")
    body = memoryview(data)[HEADER_SIZE:]
    if zlib.crc32(body) != crc:
        raise DecodeError("learned: body checksum mismatch (truncated or corrupt)")
    tiles, pos = [], 0
    for _ in range(count):
        if pos + 4 > len(body):
            raise DecodeError("learned: truncated tile table")
        (n,) = _LEN.unpack_from(body, pos)
        pos += 4
        if n % 4 or pos + n > len(body):
            raise DecodeError("learned: bad tile length")
        tiles.append(bytes(body[pos:pos + n]))
        pos += n
    return header, tiles, _extensions(body, pos)


def _extensions(body: memoryview, pos: int) -> dict[int, bytes]:
    """The ``{tag: payload}`` records from ``pos`` to the end of ``body``."""
    out: dict[int, bytes] = {}
    while pos < len(body):
        if pos + _EXT.size > len(body):
            raise DecodeError("learned: truncated extension record")
        tag, n = _EXT.unpack_from(body, pos)
        pos += _EXT.size
        if pos + n > len(body) or tag in out:
            raise DecodeError(f"learned: bad extension record (tag {tag}, {n} bytes)")
        out[tag] = bytes(body[pos:pos + n])
        pos += n
    return out
