"""Cloud-optimised GeoTIFF: internal tiles, overviews in the same codec, COG IFD and data order.

A COG is assembled from single-page tiled TIFFs that :func:`recodec.formats.tiff.write_tiff`
already produced (full resolution first, then each overview), by re-laying their bytes::

    header (IFD0 at offset 8)
    IFD full-res | IFD ov 1/2 | IFD ov 1/4 | ...     all IFDs (and their out-of-line values) first
    tiles of the smallest overview ... tiles of ov 1/2 | tiles of full-res    data, coarse to fine

which is what GDAL's COG validator asks for: the main IFD at the start, IFDs before any tile,
overview tiles before the tiles of finer levels.  Overviews halve the size (2x2 mean, rounded for
integers) until the image fits in one tile; they are flagged reduced-resolution (NewSubfileType 1).
The tiles themselves are the codec's, untouched: decoding page 0 gives the same pixels as before.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np

from recodec.errors import UnsupportedImageError

#: Byte sizes of the classic TIFF data types.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TILE_OFFSETS, _TILE_BYTES, _SUBFILE = 324, 325, 254


def is_cog(data: bytes) -> bool:
    """True for a tiled TIFF that carries reduced-resolution pages (a COG or COG-like source)."""
    import tifffile

    from recodec.formats.magic import is_tiff

    if not is_tiff(data):
        return False
    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            pages = tif.pages
            return bool(pages[0].is_tiled) and any(p.subfiletype & 1 for p in pages[1:])
    except Exception:
        return False


def overview_levels(array: np.ndarray, tile: int) -> list[np.ndarray]:
    """Successive halvings of a (H, W, S) array (2x2 mean) until it fits in one ``tile`` square."""
    levels = []
    current = array
    while max(current.shape[:2]) > tile:
        h, w = current.shape[:2]
        padded = np.pad(current, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge").astype(np.float64)
        mean = padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2, -1).mean(axis=(1, 3))
        if np.issubdtype(array.dtype, np.integer):
            info = np.iinfo(array.dtype)
            mean = np.clip(np.rint(mean), info.min, info.max)
        current = mean.astype(array.dtype)
        levels.append(current)
    return levels


def _page_parts(data: bytes) -> tuple[list[tuple[int, int, int, bytes]], list[bytes]]:
    """Tags (code, type, count, raw value bytes) and tile bytes of a one-page little-endian TIFF."""
    import tifffile

    if data[:2] != b"II" or data[2:4] != b"*\x00":
        raise UnsupportedImageError("COG assembly needs a classic little-endian TIFF")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages[0]
        tags = []
        for tag in page.tags.values():
            if tag.code in (_TILE_OFFSETS, _TILE_BYTES, _SUBFILE):
                continue
            size = _TYPE_SIZE[int(tag.dtype)] * tag.count
            tags.append((tag.code, int(tag.dtype), tag.count, data[tag.valueoffset:tag.valueoffset + size]))
        tiles = [data[o:o + n] for o, n in zip(page.dataoffsets, page.databytecounts)]
    return tags, tiles


def _ifd_size(tags: list[tuple[int, int, int, bytes]], ntiles: int) -> int:
    n = len(tags) + 3  # + TileOffsets, TileByteCounts, NewSubfileType
    outside = sum(len(raw) + len(raw) % 2 for *_, raw in tags if len(raw) > 4)
    outside += 2 * (4 * ntiles if ntiles > 1 else 0)
    return 2 + 12 * n + 4 + outside


def _ifd_bytes(start: int, tags: list[tuple[int, int, int, bytes]], offsets: list[int], counts: list[int],
               subfile: int, next_ifd: int) -> bytes:
    entries: list[tuple[int, int, int, bytes]] = list(tags)
    entries.append((_SUBFILE, 4, 1, struct.pack("<I", subfile)))
    entries.append((_TILE_OFFSETS, 4, len(offsets), struct.pack(f"<{len(offsets)}I", *offsets)))
    entries.append((_TILE_BYTES, 4, len(counts), struct.pack(f"<{len(counts)}I", *counts)))
    entries.sort(key=lambda e: e[0])
    head = struct.pack("<H", len(entries))
    extra = b""
    extra_at = start + 2 + 12 * len(entries) + 4
    for code, typ, count, raw in entries:
        if len(raw) <= 4:
            head += struct.pack("<HHI", code, typ, count) + raw.ljust(4, b"\x00")
        else:
            head += struct.pack("<HHII", code, typ, count, extra_at + len(extra))
            extra += raw + (b"\x00" if len(raw) % 2 else b"")
    return head + struct.pack("<I", next_ifd) + extra


def assemble_cog(pages: list[bytes]) -> bytes:
    """One COG from single-page tiled TIFFs: ``pages[0]`` full resolution, then overviews, coarse last."""
    parts = [_page_parts(p) for p in pages]
    ifd_starts, at = [], 8
    for tags, tiles in parts:
        ifd_starts.append(at)
        at += _ifd_size(tags, len(tiles))
    data_offsets: list[list[int]] = [[] for _ in parts]
    body = b""
    for i in reversed(range(len(parts))):  # coarsest overview first, full resolution last
        for tile in parts[i][1]:
            data_offsets[i].append(at + len(body))
            body += tile
    if at + len(body) >= 2**32:
        raise UnsupportedImageError("COG output over 4 GiB needs BigTIFF, not written yet")
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i, (tags, tiles) in enumerate(parts):
        nxt = ifd_starts[i + 1] if i + 1 < len(parts) else 0
        out += _ifd_bytes(ifd_starts[i], tags, data_offsets[i], [len(t) for t in tiles], 1 if i else 0, nxt)
    assert len(out) == at, (len(out), at)
    return bytes(out + body)


def write_cog(array: np.ndarray, write_page: Any, tile: int) -> bytes:
    """A COG of ``array``: ``write_page(level_array, is_overview)`` returns one single-page tiled TIFF."""
    pages = [write_page(array, False)] + [write_page(level, True) for level in overview_levels(array, tile)]
    return assemble_cog(pages)
