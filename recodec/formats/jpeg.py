"""JPEG: marker walking and the libjpeg-turbo decoder.

libjpeg-turbo silently pads a truncated JPEG with gray, so completeness is checked on the
markers (:func:`jpeg_info`) before any decode.  Used by the source reader and by the codecs
that decode JPEG streams (``jpeg``, and ``jxl`` for recompressed JPEGs).
"""

from __future__ import annotations

import numpy as np

from typing import TYPE_CHECKING

from recodec.errors import DecodeError, UnsupportedImageError
from recodec.formats.image import Image, as_hwc, check_header

if TYPE_CHECKING:
    from recodec.content import ReadOptions

# SOFn markers that carry frame dimensions (C4 = DHT, C8 = JPG extension, CC = DAC are not frames).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])


def jpeg_info(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, precision) from the JPEG header; DecodeError if corrupt or truncated.

    Walks the marker segments up to the first scan, then requires an end-of-image marker after
    it: entropy-coded data never contains FF D9 (0xFF bytes are stuffed), so its absence means
    the file was cut short.
    """
    if data[:2] != b"\xff\xd8":
        raise DecodeError("not a JPEG stream (no SOI marker)")
    pos, frame = 2, None
    while True:
        if pos + 4 > len(data):
            raise DecodeError("JPEG is truncated inside its header")
        if data[pos] != 0xFF:
            raise DecodeError(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xD9:
            raise DecodeError("JPEG has no image data (EOI before any scan)")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise DecodeError("JPEG is truncated or has a corrupt segment length")
        if marker in _SOF_MARKERS and length >= 8:
            seg = data[pos + 4:pos + 2 + length]
            frame = (int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"), seg[5], seg[0])
        if marker == 0xDA:
            if frame is None:
                raise DecodeError("corrupt JPEG: scan before any frame header")
            if frame[0] == 0 or frame[1] == 0:
                raise DecodeError("JPEG with zero or DNL-defined size is not supported")
            if data.rfind(b"\xff\xd9", pos) < 0:
                raise DecodeError("JPEG is truncated (no end-of-image marker)")
            return frame
        pos += 2 + length


def decode_jpeg(data: bytes) -> np.ndarray:
    """Decode one complete JPEG stream with libjpeg-turbo (same pixels as Pillow)."""
    _, _, _, precision = jpeg_info(data)
    if precision != 8:
        raise DecodeError(f"{precision}-bit JPEG is not supported (8-bit only)")
    import imagecodecs

    return imagecodecs.jpeg8_decode(data)


def read_jpeg(data: bytes, options: "ReadOptions") -> Image:
    """Read a source JPEG: limits from the header, CMYK refused, libjpeg warnings judged, orientation applied."""
    from recodec.content import jpeg_app_segments, jpeg_container_info
    from recodec.integrity import check_jpeg_plausible, decode_jpeg_strict

    height, width, components, precision = jpeg_info(data)
    check_header(height, width, components, 1, options, "JPEG")
    sof = next((m for m, _ in jpeg_app_segments(data) if m in _SOF_MARKERS), 0xC0)
    check_jpeg_plausible(data, height, width, sof)
    if components == 4:
        raise UnsupportedImageError(
            "CMYK/YCCK JPEG is refused: converting inks to RGB needs a colour-managed transform that "
            "would change the archived pixels (policy in docs/manifest.md#content)", reason="cmyk")
    if precision != 8 or components not in (1, 3):
        raise UnsupportedImageError(f"{precision}-bit JPEG with {components} components is not supported")
    info = jpeg_container_info(data)
    arr, warnings = decode_jpeg_strict(data, "GRAY" if components == 1 else "RGB", options.accept_warnings)
    image = Image(as_hwc(arr), "JPEG", bit_depth=8, icc_profile=info.icc_profile,
                  photometric="ycbcr" if components == 3 else "minisblack", warnings=warnings)
    return image.orient(info.orientation)
