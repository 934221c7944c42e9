"""LERC (Limited Error Raster Compression) through imagecodecs: a guaranteed per-pixel error bound.

Knob: ``max_error`` in the data's own units (lower is better); every decoded value is within
``max_error`` of the source, checked after encoding (for float32, rounding of the reconstruction
can overshoot by an ulp, so recodec tightens the bound until the check passes).  0 is lossless;
for integer data any value below 1 is lossless too.  ``zstd`` (default on) wraps the LERC blob
in zstd, 10-20% smaller.

Holds every integer and float dtype LERC knows, with any band count.  Bands are always written
planar (one LERC band per image band), so the decoder never has to guess the layout; NaNs in
float data are kept through LERC's per-band validity masks.  Infinities are refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.errors import CodecError, UnsupportedImageError
from recodec.formats.magic import is_format
from recodec.metrics import max_abs_error

_MAX_TIGHTEN = 4


def lerc_encode_zeroed(data: np.ndarray, level: float | None = None, *, compression: str | None = None,
                       compressionargs: dict[str, Any] | None = None, **kwargs: Any) -> bytes:
    """``imagecodecs.lerc_encode`` with identical bytes in every process.

    LERC's bit stuffer ORs the codes into the output buffer and leaves the unused bits of each
    band blob's last 32-bit word as they were; imagecodecs allocates that buffer uninitialised,
    so those bits (and the blob checksum over them) came from whatever the heap held: outputs
    differed between runs in the last bytes of each band blob.  Encoding into a zeroed buffer
    makes them 0.  The zstd/deflate wrapper is applied here, after the blob is fixed.
    """
    import imagecodecs

    arr = np.asarray(data)
    bound = arr.nbytes + arr.nbytes // 4 + (1 << 16)  # raw samples, masks and per-band headers fit
    try:
        blob = bytes(imagecodecs.lerc_encode(arr, level=level, out=bytearray(bound), **kwargs))
    except Exception:  # bound too small for this data: measure, then encode into a buffer of that size
        size = len(imagecodecs.lerc_encode(arr, level=level, **kwargs))
        blob = bytes(imagecodecs.lerc_encode(arr, level=level, out=bytearray(size), **kwargs))
    if compression == "zstd":
        return bytes(imagecodecs.zstd_encode(blob, **(compressionargs or {})))
    if compression == "deflate":
        return bytes(imagecodecs.zlib_encode(blob, **(compressionargs or {})))
    if compression is not None:
        raise ValueError(f"unknown LERC compression {compression!r}")
    return blob


def use_zeroed_lerc_in_tifffile() -> None:
    """Make tifffile's LERC tile encoder :func:`lerc_encode_zeroed` (GeoTIFF outputs are deterministic too)."""
    import tifffile

    tifffile.TIFF.COMPRESSORS._codecs[34887] = lerc_encode_zeroed  # tifffile's lazy codec cache


class LercCodec(LibraryCodec):
    """LERC 2 with an exactly enforced max error, optionally zstd-wrapped."""

    name = "lerc"
    summary = "LERC (Esri, via imagecodecs), bounded max error, any dtype/bands"
    capabilities = Capabilities(
        dtypes=("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64"),
        min_bands=1, max_bands=None, lossy=True, lossless=True, extension=".lerc", tiff_compression="lerc",
    )
    knob = Knob(
        "max_error", 0.0, math.inf, 0.0, higher_is_better=False, integer=False,
        description="largest allowed |decoded - source| in data units; 0 = lossless",
        lossless_value=0.0,
    )
    params = (
        Param("lossless", bool, False, "force max_error = 0"),
        Param("zstd", bool, True, "zstd-compress the LERC blob (LERC+zstd)"),
    )

    def load(self) -> None:
        super().load()
        use_zeroed_lerc_in_tifffile()

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.lerc_version()

    @staticmethod
    def _max_error(params: dict[str, Any]) -> float:
        return 0.0 if params["lossless"] else float(params["max_error"])

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        # The TIFF tile codec gets no post-check: its bound is LERC's own (exact for integers).
        return {"level": self._max_error(params), "compression": "zstd" if params["zstd"] else None}

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        planar = np.ascontiguousarray(np.moveaxis(array, -1, 0))
        masks = None
        if np.issubdtype(array.dtype, np.floating):
            if np.isinf(planar).any():
                raise UnsupportedImageError("lerc cannot hold infinite values")
            nan = np.isnan(planar)
            if nan.any():
                masks, planar = ~nan, np.where(nan, 0, planar)
        bound = self._max_error(params)
        level = bound
        for _ in range(_MAX_TIGHTEN):
            data = lerc_encode_zeroed(planar, level=level, planar=True, masks=masks,
                                      compression="zstd" if params["zstd"] else None)
            if bound == 0 or max_abs_error(array, self._decode(data).reshape(array.shape)) <= bound:
                return data
            # float rounding of the reconstruction overshot: shrink by the largest ulp in play
            level = max(level - 2 * float(np.spacing(np.abs(planar).max().astype(array.dtype))), level / 2)
        data = lerc_encode_zeroed(planar, level=0, planar=True, masks=masks,
                                  compression="zstd" if params["zstd"] else None)
        if max_abs_error(array, self._decode(data).reshape(array.shape)) > bound:
            raise CodecError(f"lerc could not meet max_error={bound}")
        return data

    def _decode(self, data: bytes) -> np.ndarray:
        import imagecodecs

        values, masks = imagecodecs.lerc_decode(data, masks=True)
        if masks is not None and np.issubdtype(values.dtype, np.floating) and not masks.all():
            values = np.where(masks, values, np.nan).astype(values.dtype)
        # recodec always writes planar blobs: (H, W) for one band, (S, H, W) for more
        return values if values.ndim == 2 else np.moveaxis(values, 0, -1)

    def sniff(self, data: bytes, /) -> bool:
        if is_format("LERC", data):
            return True
        if not is_format("ZSTD", data):
            return False
        import imagecodecs

        try:
            return is_format("LERC", bytes(imagecodecs.zstd_decode(data)[:10]))
        except Exception:
            return False
