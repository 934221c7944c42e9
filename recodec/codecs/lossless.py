"""Lossless baselines: PNG (libpng) and tiled TIFF with zstd + predictor (tifffile).

Also the TIFF helpers shared with :mod:`recodec.imageio`'s GeoTIFF container:
:func:`write_tiff` and :func:`tiff_page_hwc`.

- ``png``: uint8/uint16 with 1-4 bands (gray, gray+alpha, RGB, RGBA) as a plain PNG file; knob
  ``level`` is the zlib effort 0-9 (every level is lossless).
- ``zstd-tiff``: any dtype and band count as a 256x256-tiled TIFF, zstd-compressed after TIFF's
  horizontal (integers) or floating-point predictor; knob ``level`` is the zstd level 1-22.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from recodec.codecs.base import Capabilities, Codec, Knob, require
from recodec.errors import DecodeError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IEND always has length 0 and the same CRC
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
TILE = (256, 256)
#: TIFF compressions tifffile refuses a predictor with (they transform the data themselves).
_NO_PREDICTOR = frozenset({"jpeg", "jpeg2000", "jpegxl", "webp", "lerc", "png", "jpegxr", "avif"})


def check_png_complete(data: bytes) -> None:
    """Raise DecodeError unless the PNG has its IEND chunk: libpng decodes a file cut after IDAT."""
    if _PNG_IEND not in data:
        raise DecodeError("PNG is truncated (no IEND chunk)")


def is_tiff(data: bytes) -> bool:
    """True when ``data`` starts with a classic or BigTIFF header."""
    return data[:4] in TIFF_MAGICS


def write_tiff(array: np.ndarray, *, compression: str | None, compressionargs: dict[str, Any] | None = None,
               planar: bool = False, photometric: str | None = None, extrasamples: Sequence[int] | None = None,
               extratags: Sequence[tuple[Any, ...]] = (), tile: tuple[int, int] = TILE) -> bytes:
    """A tiled TIFF of a (H, W, S) array; ``planar`` stores one plane per band (planarconfig separate)."""
    tifffile = require("tifffile", "zstd-tiff", "codecs")
    bands = array.shape[2]
    # no bigger than the image (rounded up to the multiple of 16 TIFF requires): less padding
    tile = (min(tile[0], -(-array.shape[0] // 16) * 16), min(tile[1], -(-array.shape[1] // 16) * 16))
    if photometric is None:
        photometric = "rgb" if bands == 3 or (bands == 4 and extrasamples) else "minisblack"
    data = array[:, :, 0] if bands == 1 else np.moveaxis(array, -1, 0) if planar else array
    buf = io.BytesIO()
    predictor = None
    if compression not in _NO_PREDICTOR and compression is not None and (
            array.dtype.kind == "f" or (array.dtype.kind in "iu" and array.dtype.itemsize <= 4)):
        predictor = True  # horizontal differencing for integers, floating-point predictor for floats
    tifffile.imwrite(
        buf, np.ascontiguousarray(data), photometric=photometric,
        planarconfig=None if bands == 1 else "separate" if planar else "contig", extrasamples=extrasamples,
        tile=tile, compression=compression, compressionargs=compressionargs, predictor=predictor,
        extratags=list(extratags), metadata=None, software=False,
        bigtiff=array.nbytes > 2**32 - 2**25,
    )
    return buf.getvalue()


def tiff_page_hwc(page: Any) -> np.ndarray:
    """Decode one tifffile page to (H, W, S), whatever its planar configuration."""
    arr = page.asarray(maxworkers=1)
    axes = page.axes
    if arr.ndim != len(axes):
        raise DecodeError(f"unexpected TIFF page layout {axes!r} for shape {arr.shape}")
    for i in reversed(range(len(axes))):  # drop singleton non-spatial axes (e.g. a 1-frame volume)
        if axes[i] not in "YXS" and arr.shape[i] == 1:
            arr, axes = arr.squeeze(i), axes[:i] + axes[i + 1:]
    if sorted(axes) not in (["X", "Y"], ["S", "X", "Y"]):
        raise DecodeError(f"unsupported TIFF page layout {page.axes!r} (only 2-D images with samples)")
    if "S" not in axes:
        arr, axes = arr[..., np.newaxis], axes + "S"
    return np.transpose(arr, [axes.index(c) for c in "YXS"])


class PngCodec(Codec):
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

    def load(self) -> None:
        require("imagecodecs", self.name, self.extra)

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.png_version()

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        return imagecodecs.png_encode(array if array.shape[2] > 1 else array[:, :, 0], level=int(params["level"]))

    def _decode(self, data: bytes) -> np.ndarray:
        import imagecodecs

        check_png_complete(data)
        return imagecodecs.png_decode(data)

    def sniff(self, data: bytes, /) -> bool:
        return data[:8] == PNG_SIGNATURE


class ZstdTiffCodec(Codec):
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

    def load(self) -> None:
        require("tifffile", self.name, self.extra)
        require("imagecodecs", self.name, self.extra)

    def version(self) -> str:
        import imagecodecs
        import tifffile

        return f"tifffile {tifffile.__version__}, {imagecodecs.zstd_version()}"

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"level": int(params["level"])}

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        return write_tiff(array, compression="zstd", compressionargs=self.tiff_compressionargs(params))

    def _decode(self, data: bytes) -> np.ndarray:
        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not tif.pages:
                raise DecodeError("TIFF has no image")
            return tiff_page_hwc(tif.pages.first)

    def sniff(self, data: bytes, /) -> bool:
        return is_tiff(data)
