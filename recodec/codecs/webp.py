"""WebP (VP8 lossy / VP8L lossless) through Pillow's libwebp.

Knob: ``quality`` 1-100 (higher is better); ``lossless=True`` switches to VP8L, where libwebp's
"quality" means effort, so recodec pins it to 100 and lets ``method`` (0-6) trade speed for size.
Lossy WebP is always YUV 4:2:0.  WebP only holds RGB(A): an RGB image is a plain ``.webp``;
every other band count is a band pack (4 bands = RGB + one band, otherwise one stream per band),
and a single band is stored as R = G = B and read back as channel 0 (WebP has no gray mode).
Alpha is never written as a WebP alpha plane, so colour under transparent pixels is kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec, pil_encode
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.formats.magic import is_format


def is_webp(data: bytes) -> bool:
    """True when ``data`` starts with a RIFF/WEBP header."""
    return is_format("WEBP", data)


def decode_webp(data: bytes) -> np.ndarray:
    """Decode one WebP stream with libwebp (imagecodecs: no Pillow pixel-count cap, truncation raises)."""
    import imagecodecs

    return imagecodecs.webp_decode(data)


class WebpCodec(LibraryCodec):
    """WebP lossy (VP8, 4:2:0) and lossless (VP8L)."""

    name = "webp"
    summary = "WebP (libwebp via Pillow), VP8 lossy 4:2:0 or VP8L lossless"
    capabilities = Capabilities(
        dtypes=("uint8",), min_bands=1, max_bands=None, lossy=True, lossless=True,
        extension=".webp", tiff_compression="webp",
    )
    knob = Knob(
        "quality", 1, 100, 85, higher_is_better=True, integer=True,
        description="libwebp lossy quality 1-100 (ignored when lossless)",
        quality_shortcut=True,
    )
    params = (
        Param("lossless", bool, False, "VP8L lossless mode"),
        Param("method", int, 4, "speed/size trade-off, 0 fastest .. 6 smallest", tuple(range(7))),
    )
    requires = ("PIL.WebPImagePlugin", "imagecodecs")
    magic = "WEBP"
    native_bands = frozenset({3})

    def version(self) -> str:
        from PIL import features

        return f"libwebp {features.version('webp')}"

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        # tifffile's WebP writer: level >= 100 (or lossless) selects VP8L.
        return {"level": 100 if params["lossless"] else int(params["quality"]), "lossless": bool(params["lossless"]),
                "method": int(params["method"])}

    def _encode_part(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        lossless = bool(params["lossless"])
        if array.shape[2] == 1:
            array = np.repeat(array, 3, axis=2)
        return pil_encode(array, "WEBP", lossless=lossless, quality=100 if lossless else int(params["quality"]),
                          method=int(params["method"]), exact=True)

    def _decode_part(self, data: bytes) -> np.ndarray:
        return decode_webp(data)
