"""JPEG (ITU-T T.81) through libjpeg-turbo: the DCT transform-coding baseline.

Knob: ``quality`` 1-100 (higher is better). Options: ``subsampling`` ("4:2:0",
"4:2:2", "4:4:4") and ``progressive``. Holds uint8; 1 and 3 bands are plain JPEG
files, any other band count is a band pack (RGB + 1 gray stream for 4 bands, one gray
stream per band otherwise, see :func:`recodec.formats.bandpack.band_groups`).

Encoding goes through Pillow; decoding through libjpeg-turbo after the marker walk of
:mod:`recodec.formats.jpeg` has checked the stream is complete.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec, pil_encode
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.formats.jpeg import decode_jpeg, jpeg_info

__all__ = ["JpegCodec", "decode_jpeg", "jpeg_info"]


class JpegCodec(LibraryCodec):
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
    requires = ("PIL.Image", "imagecodecs")
    magic = "JPEG"
    #: Band counts one JPEG stream holds as is (gray, YCbCr).
    native_bands = frozenset({1, 3})

    def version(self) -> str:
        import imagecodecs
        from PIL import features

        pil = features.version("libjpeg_turbo") or features.version("jpg")
        return f"libjpeg-turbo {pil} (encode, Pillow); {imagecodecs.jpeg8_version()} (decode)"

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"level": int(params["quality"])}

    def _encode_part(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        return pil_encode(array, "JPEG", quality=int(params["quality"]), subsampling=params["subsampling"],
                          progressive=bool(params["progressive"]), optimize=True)

    def _decode_part(self, data: bytes) -> np.ndarray:
        return decode_jpeg(data)
