"""Source integrity: decoder warnings, implausible headers and the memory budget, before trusting pixels.

- **Decoder warnings.**  libjpeg reports a JPEG cut short ("premature end of data segment"),
  corrupt entropy data or extraneous bytes only as *warnings*, and Pillow/imagecodecs decode such
  files silently (the missing part is gray padding).  JPEG sources are decoded with simplejpeg in
  strict mode, which turns those warnings into errors; tifffile's logged warnings and container
  problems (bytes after PNG's IEND, a RIFF size that disagrees) count the same, and so do the
  libjpeg warnings of a TIFF's JPEG tiles (decoded once more in strict mode).  A warning fails
  the row with ``corrupt_source``, unless the run passes ``accept_warnings``: then the row is
  ``ok`` and records the warnings.
- **Implausible headers.**  A header whose pixel count could not be coded in the file's size at
  the format's best compression ratio is refused before decoding (``implausible_header``): the
  600-byte JPEG that claims 8000 x 8000 pixels.  Bounds: Huffman JPEG >= 1 bit per 8x8 luma block;
  PNG and deflate TIFF <= 1,032:1 (deflate's maximum); LZW <= 3,000:1; PackBits <= 64:1;
  uncompressed TIFF must hold every sample.  Formats with adaptive arithmetic or entropy coders
  that can code blank areas in almost no bits (arithmetic JPEG, WebP, JPEG 2000, zstd/LZMA,
  LERC, JPEG-in-TIFF) have no useful bound; the memory budget covers them.
- **Memory budget.**  width x height x bands x bytes per sample of the decoded raster, from the
  header, against ``max_image_bytes`` (``too_large``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from recodec.errors import CorruptSourceError, ImageTooLargeError, ImplausibleHeaderError

# Largest compression ratio (decoded bytes / coded bytes) each TIFF compression can reach.
_TIFF_MAX_RATIO = {1: 1.0, 5: 3000.0, 8: 1032.0, 32946: 1032.0, 32773: 64.0}
_DEFLATE_MAX_RATIO = 1032.0
# Arithmetic-coded JPEG frames: SOF9-SOF11, SOF13-SOF15.
_ARITHMETIC_SOF = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def check_budget(height: int, width: int, bands: int, itemsize: int, max_bytes: int, what: str) -> None:
    """Refuse a raster whose decoded size (from the header) is over the memory budget."""
    need = int(height) * int(width) * max(int(bands), 1) * max(int(itemsize), 1)
    if need > max_bytes:
        raise ImageTooLargeError(
            f"{what} header declares {width} x {height} x {bands} band(s) x {itemsize} byte(s) = "
            f"{need:,} bytes decoded, over the per-image memory budget of {max_bytes:,} bytes"
        )


def _implausible(what: str, height: int, width: int, size: int, minimum: float, rule: str) -> None:
    if size < minimum:
        raise ImplausibleHeaderError(
            f"{what} header declares {width} x {height} pixels, which cannot be coded in {size:,} "
            f"bytes ({rule}; at least {int(minimum):,} bytes needed)"
        )


def check_jpeg_plausible(data: bytes, height: int, width: int, sof: int) -> None:
    """Huffman JPEG codes every 8x8 luma block with at least one bit (its DC difference)."""
    if sof in _ARITHMETIC_SOF:
        return
    blocks = -(-height // 8) * -(-width // 8)
    _implausible("JPEG", height, width, len(data), blocks / 8, "Huffman coding needs >= 1 bit per 8x8 block")


def check_png_plausible(data: bytes, height: int, width: int, bits_per_pixel: int) -> None:
    """The filtered scanlines of a PNG deflate at most 1,032:1."""
    raw = height * (1 + -(-width * bits_per_pixel // 8))
    _implausible("PNG", height, width, len(data), raw / _DEFLATE_MAX_RATIO - 64, "deflate's ratio is <= 1,032:1")


def check_tiff_plausible(page: Any, file_size: int) -> None:
    """Segment byte counts must fit the file and be able to hold the page at its compression's best ratio."""
    counts = [int(c) for c in (page.databytecounts or ())]
    offsets = [int(o) for o in (page.dataoffsets or ())]
    for offset, count in zip(offsets, counts):
        if count and offset + count > file_size:
            raise CorruptSourceError(
                f"TIFF segment at byte {offset} of {count} bytes runs past the end of the "
                f"{file_size}-byte file (truncated)")
    ratio = _TIFF_MAX_RATIO.get(int(page.compression))
    if ratio is None:
        return
    decoded = int(np.prod(page.shaped)) * page.bitspersample / 8
    minimum = decoded / ratio
    if int(page.compression) != 1:
        minimum -= 64 * len(counts)  # per-segment headers and rounding
    _implausible("TIFF", int(page.imagelength), int(page.imagewidth), sum(counts), minimum,
                 f"compression {int(page.compression)} reaches at most {ratio:g}:1")


def decode_jpeg_strict(data: bytes, colorspace: str, accept_warnings: bool) -> tuple[np.ndarray, list[str]]:
    """Decode a JPEG with libjpeg-turbo, turning its warnings into :class:`CorruptSourceError`.

    With ``accept_warnings`` the image is decoded anyway and the warning is returned instead.
    """
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True), []
    except ValueError as exc:
        message = str(exc) or "libjpeg warning"
        if not accept_warnings:
            raise CorruptSourceError(f"JPEG decoder warning: {message}") from exc
    return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False), [f"JPEG: {message}"]


def jpeg_tile_warnings(page: Any, data: bytes) -> list[str]:
    """libjpeg warnings of the JPEG tiles/strips of a TIFF page (compression 7), which tifffile ignores.

    Each segment is an abbreviated JPEG stream; with the page's JPEGTables it is decoded once more
    by libjpeg-turbo in strict mode.
    """
    import simplejpeg

    if int(page.compression) != 7 or int(page.samplesperpixel) not in (1, 3):
        return []
    tables = bytes(page.jpegtables or b"")
    prefix = tables[:-2] if tables.endswith(b"\xff\xd9") else b"\xff\xd8"
    colorspace = "GRAY" if int(page.samplesperpixel) == 1 else "RGB"
    warnings = []
    for i, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
        segment = data[int(offset):int(offset) + int(count)]
        if not segment:
            continue
        try:
            simplejpeg.decode_jpeg(prefix + segment[2:] if segment[:2] == b"\xff\xd8" else prefix + segment,
                                   colorspace=colorspace, strict=True)
        except ValueError as exc:
            warnings.append(f"JPEG segment {i}: {exc}")
    return warnings


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs while decoding (it logs, not raises, on corrupt segments)."""
    logger = logging.getLogger("tifffile")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


def judge_warnings(warnings: list[str], accept_warnings: bool, what: str) -> list[str]:
    """Raise :class:`CorruptSourceError` for decoder/container warnings, unless accepted; return them."""
    if warnings and not accept_warnings:
        raise CorruptSourceError(f"{what} decoder warning: {'; '.join(warnings)}")
    return [f"{what}: {w}" for w in warnings]


__all__ = [
    "check_budget", "check_jpeg_plausible", "check_png_plausible", "check_tiff_plausible",
    "decode_jpeg_strict", "jpeg_tile_warnings", "judge_warnings", "tifffile_warnings",
]
