"""Lossless baselines: PNG (libpng) and tiled TIFF with zstd + predictor (tifffile).

- ``png``: uint8/uint16 with 1-4 bands (gray, gray+alpha, RGB, RGBA) as a plain PNG file; knob
  ``level`` is the zlib effort 0-9 (every level is lossless).
- ``zstd-tiff``: any dtype and band count as a 256x256-tiled TIFF, zstd-compressed after TIFF's
  horizontal (integers) or floating-point predictor; knob ``level`` is the zstd level 1-22.
  The TIFF writing and reading live in :mod:`recodec.formats.tiff`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob
from recodec.formats.headers import check_png_complete
from recodec.formats.tiff import decode_tiff, write_tiff


def png_size_bound(array: np.ndarray) -> int:
    """Bytes a PNG of ``array`` can take at most (stored deflate blocks, chunk overhead).

    imagecodecs sizes its output buffer from the pixel count alone, which is too small for
    narrow images (one filter byte per row): a 1-column PNG over ~200 rows failed to encode.
    """
    height = array.shape[0]
    raw = height * (1 + array.shape[1] * array.shape[2] * array.itemsize)
    return raw + 5 * (raw // 16383 + 1) + 12 * (raw // 8192 + 1) + 4096


class PngCodec(LibraryCodec):
    """PNG through libpng (imagecodecs), a lossless baseline for 8/16-bit images of 1-4 bands."""

    name = "png"
    summary = "PNG (libpng via imagecodecs), lossless deflate"
    capabilities = Capabilities(
        dtypes=("uint8", "uint16"), min_bands=1, max_bands=4, lossy=False, lossless=True,
        extension=".png", tiff_compression=None,
    )
    knob = Knob(
        "level", 0, 9, 9, higher_is_better=True, integer=True,
        description="zlib effort 0-9; lossless at every level (higher = smaller, slower)",
    )
    magic = "PNG"

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.png_version()

    def _encode_part(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        return imagecodecs.png_encode(array if array.shape[2] > 1 else array[:, :, 0], level=int(params["level"]),
                                      out=png_size_bound(array))

    def _decode_part(self, data: bytes) -> np.ndarray:
        import imagecodecs

        check_png_complete(data)
        return imagecodecs.png_decode(data)


class ZstdTiffCodec(LibraryCodec):
    """Tiled TIFF with zstd and a predictor: the any-dtype, any-band lossless baseline."""

    name = "zstd-tiff"
    summary = "TIFF + zstd + predictor (tifffile), lossless, any dtype/bands"
    capabilities = Capabilities(
        dtypes=("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
                "float32", "float64"),
        min_bands=1, max_bands=None, lossy=False, lossless=True, extension=".tif", tiff_compression="zstd",
    )
    knob = Knob(
        "level", 1, 22, 19, higher_is_better=True, integer=True,
        description="zstd level 1-22; lossless at every level (higher = smaller, slower)",
    )
    requires = ("tifffile", "imagecodecs")
    magic = "TIFF"

    def version(self) -> str:
        import imagecodecs
        import tifffile

        return f"tifffile {tifffile.__version__}, {imagecodecs.zstd_version()}"

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"level": int(params["level"])}

    def _encode_part(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        return write_tiff(array, compression="zstd", compressionargs=self.tiff_compressionargs(params))

    def _decode_part(self, data: bytes) -> np.ndarray:
        return decode_tiff(data)
