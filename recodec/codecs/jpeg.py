"""JPEG (ITU-T T.81) through libjpeg-turbo: the DCT transform-coding baseline.

Knob: ``quality`` 1-100 (higher is better). Options: ``subsampling`` ("4:2:0",
"4:2:2", "4:4:4") and ``progressive``. Holds uint8; 1 and 3 bands are plain JPEG
files, any other band count is a band pack (RGB + 1 gray stream for 4 bands, one gray
stream per band otherwise, see :func:`recodec.codecs.base.band_groups`).

This module also holds the helpers shared by the Pillow-based codecs (:func:`pil_encode`)
and the JPEG marker walker (:func:`jpeg_info`) that the source reader uses too: libjpeg-turbo
silently pads a truncated JPEG with gray, so completeness is checked on the markers.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from recodec.codecs.base import (
    Capabilities,
    Codec,
    Knob,
    Param,
    decode_grouped,
    encode_grouped,
    is_band_pack,
    require,
)
from recodec.errors import DecodeError

# SOFn markers that carry frame dimensions (C4 = DHT, C8 = JPG extension, CC = DAC are not frames).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])


def pil_image(array: np.ndarray) -> Any:
    """A Pillow image from a (H, W, 1|3|4) uint8 array (one band becomes mode L)."""
    from PIL import Image

    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def pil_encode(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    """Encode a (H, W, 1|3|4) uint8 array with Pillow's ``fmt`` writer."""
    buf = io.BytesIO()
    pil_image(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def pil_decode(data: bytes, codec: str, extra: str = "codecs") -> np.ndarray:
    """Decode bytes with Pillow into a numpy array, fully loading the pixels.

    ``Image.load()`` is forced here because Pillow decodes lazily: only the load notices a
    truncated stream (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False on purpose).
    """
    pil = require("PIL.Image", codec, extra)
    with pil.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im)


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


class JpegCodec(Codec):
    """Baseline / progressive JPEG via libjpeg-turbo."""

    name = "jpeg"
    summary = "JPEG (libjpeg-turbo via Pillow / imagecodecs), DCT transform coding"
    capabilities = Capabilities(
        dtypes=("uint8",), min_bands=1, max_bands=None, lossy=True, lossless=False,
        extension=".jpg", tiff_compression="jpeg",
    )
    knob = Knob(
        "quality", 1, 100, 85, higher_is_better=True, integer=True,
        description="libjpeg quality 1-100; scales the standard quantisation tables",
        quality_shortcut=True,
    )
    params = (
        Param("subsampling", str, "4:2:0", "chroma subsampling", ("4:2:0", "4:2:2", "4:4:4")),
        Param("progressive", bool, False, "write a progressive (multi-scan) JPEG"),
    )
    #: Band counts one JPEG stream holds as is (gray, YCbCr).
    native_bands = frozenset({1, 3})

    def load(self) -> None:
        require("PIL.Image", self.name, self.extra)
        require("imagecodecs", self.name, self.extra)

    def version(self) -> str:
        import imagecodecs
        from PIL import features

        pil = features.version("libjpeg_turbo") or features.version("jpg")
        return f"libjpeg-turbo {pil} (encode, Pillow); {imagecodecs.jpeg8_version()} (decode)"

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"level": int(params["quality"])}

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        options = {
            "quality": int(params["quality"]), "subsampling": params["subsampling"],
            "progressive": bool(params["progressive"]), "optimize": True,
        }
        return encode_grouped(self.name, array, self.native_bands, lambda a: pil_encode(a, "JPEG", **options))

    def _decode(self, data: bytes) -> np.ndarray:
        return decode_grouped(self.name, data, decode_jpeg)

    def sniff(self, data: bytes, /) -> bool:
        return data[:3] == b"\xff\xd8\xff" or is_band_pack(data, self.name)
