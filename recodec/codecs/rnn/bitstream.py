"""The progressive container of the ``rnn`` codec: one chunk per iteration.

Layout (big-endian)::

    magic       4s   b"RCRN"
    version     B    FORMAT_VERSION
    weights     32s  SHA-256 of the weights file that wrote it
    bands       B    1 (gray, coded as replicated RGB), 2 (coded as b0, b1, b1) or 3
    height      I
    width       I
    tile        H    tile edge in pixels (multiple of 16)
    iterations  B    number of iteration chunks the stream holds (k)
    header crc  I    CRC-32 of the bytes above
    chunk 1..k: tiles x u32 payload length, the payloads (range-coder words, little-endian
                uint32), u32 CRC-32 of the chunk

Iteration-major order makes every prefix that ends on a chunk border a valid stream of
fewer iterations: :func:`cut` rewrites the iteration count of the header and drops the
later chunks, and :func:`unpack` with ``partial=True`` reads whatever complete chunks a
truncated stream holds.  The file size, header included, is what bpp counts.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, replace

from recodec.errors import DecodeError, ImageTooLargeError
from recodec.formats.magic import RNN_MAGIC

MAGIC = RNN_MAGIC
FORMAT_VERSION = 1
_HEAD = struct.Struct(">4sB32sBIIHB")
HEADER_SIZE = _HEAD.size + 4
_U32 = struct.Struct(">I")
MAX_PIXELS = 400_000_000


@dataclass(frozen=True)
class Header:
    """Parsed container header."""

    weights_sha256: bytes
    bands: int
    height: int
    width: int
    tile: int
    iterations: int

    def tiles(self) -> int:
        """Number of tiles, row-major."""
        return math.ceil(self.height / self.tile) * math.ceil(self.width / self.tile)


def _head(h: Header) -> bytes:
    raw = _HEAD.pack(MAGIC, FORMAT_VERSION, h.weights_sha256, h.bands, h.height, h.width, h.tile, h.iterations)
    return raw + _U32.pack(zlib.crc32(raw))


def pack_chunk(payloads: list[bytes]) -> bytes:
    """One iteration's chunk: tile lengths, tile payloads, CRC-32."""
    body = b"".join(_U32.pack(len(p)) for p in payloads) + b"".join(payloads)
    return body + _U32.pack(zlib.crc32(body))


def pack(header: Header, chunks: list[bytes]) -> bytes:
    """Serialise a header (its iteration count must equal ``len(chunks)``) and packed chunks."""
    if header.iterations != len(chunks):
        raise ValueError("header iteration count differs from the chunk count")
    return _head(header) + b"".join(chunks)


def read_header(data: bytes) -> Header:
    """Parse and validate the fixed header."""
    if len(data) < HEADER_SIZE:
        raise DecodeError(f"rnn: {len(data)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, sha, bands, height, width, tile, iters = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("rnn: bad magic bytes")
    if version != FORMAT_VERSION:
        raise DecodeError(f"rnn: unsupported format version {version}")
    (crc,) = _U32.unpack_from(data, _HEAD.size)
    if zlib.crc32(data[:_HEAD.size]) != crc:
        raise DecodeError("rnn: header checksum mismatch")
    if bands not in (1, 2, 3) or height == 0 or width == 0 or tile == 0 or tile % 16 or iters == 0:
        raise DecodeError(f"rnn: invalid header (bands={bands}, {height}x{width}, tile={tile}, k={iters})")
    if height * width > MAX_PIXELS:
        raise ImageTooLargeError(f"rnn: header declares {height}x{width} pixels")
    return Header(sha, bands, height, width, tile, iters)


def _chunk_end(data: bytes, pos: int, tiles: int) -> tuple[list[bytes], int] | None:
    """Payloads of the chunk at ``pos`` and its end, or None if incomplete or corrupt."""
    table = pos + 4 * tiles
    if table > len(data):
        return None
    lengths = [_U32.unpack_from(data, pos + 4 * i)[0] for i in range(tiles)]
    end = table + sum(lengths)
    if end + 4 > len(data) or any(n % 4 for n in lengths):
        return None
    if zlib.crc32(data[pos:end]) != _U32.unpack_from(data, end)[0]:
        return None
    payloads, p = [], table
    for n in lengths:
        payloads.append(bytes(data[p:p + n]))
        p += n
    return payloads, end + 4


def unpack(data: bytes, *, partial: bool = False) -> tuple[Header, list[list[bytes]]]:
    """Header and per-iteration tile payloads.

    Strict by default: every chunk the header announces must be present and intact, and
    nothing may follow.  With ``partial=True`` the complete leading chunks are returned
    (at least one), which is how a stream cut at any byte is read.
    """
    header = read_header(data)
    chunks, pos = [], HEADER_SIZE
    for k in range(header.iterations):
        got = _chunk_end(data, pos, header.tiles())
        if got is None:
            if partial and chunks:
                break
            raise DecodeError(f"rnn: iteration {k + 1} of {header.iterations} is truncated or corrupt")
        chunks.append(got[0])
        pos = got[1]
    if not partial and pos != len(data):
        raise DecodeError("rnn: trailing bytes after the last iteration")
    return replace(header, iterations=len(chunks)), chunks


def chunk_offsets(data: bytes) -> list[int]:
    """Byte offset of the end of each complete iteration chunk (the valid cut points)."""
    header = read_header(data)
    ends, pos = [], HEADER_SIZE
    for _ in range(header.iterations):
        got = _chunk_end(data, pos, header.tiles())
        if got is None:
            break
        pos = got[1]
        ends.append(pos)
    return ends


def cut(data: bytes, iterations: int) -> bytes:
    """A standalone stream of the first ``iterations`` iterations (header rewritten)."""
    header = read_header(data)
    ends = chunk_offsets(data)
    if not 1 <= iterations <= len(ends):
        raise DecodeError(f"rnn: cannot cut to {iterations} iterations; the stream holds {len(ends)}")
    return _head(replace(header, iterations=iterations)) + data[HEADER_SIZE:ends[iterations - 1]]


def cut_to_budget(data: bytes, max_bytes: int) -> bytes:
    """The longest standalone cut that fits in ``max_bytes`` (at least one iteration)."""
    ends = chunk_offsets(data)
    fitting = [k for k, end in enumerate(ends, 1) if end <= max_bytes]
    if not fitting:
        raise DecodeError(f"rnn: even one iteration needs {ends[0] if ends else '?'} bytes > {max_bytes}")
    return cut(data, fitting[-1])
