"""Lossy base plus a bounded residual: a JPEG 2000 base image corrected to an exact max error.

Two-stage near-lossless coding, a lossy layer plus a quantized residual layer (Ansari, Memon,
Ceran, "Near-lossless image compression techniques", J. Electronic Imaging 7(3), 1998)::

    x ──► base encoder (JPEG 2000) ──► base bytes ──► base decoder ──► b
    r = x - b ──► k = floor((r + E) / (2E + 1)) ──► JPEG-LS lossless (recodec ``jpegls``) ──► residual bytes
    decode: x' = clip(b + k (2E + 1), lo, hi)      so |x - x'| <= E exactly, per sample

Knob: ``max_error`` (E, data units, floored on integers), exact like LERC and JPEG-LS.  The
base quality is chosen per image from ``trials`` settings around the residual step (the one with
the fewest total bytes wins), so the caller never tunes it.

Bases (``base``):
- ``jpeg2000`` (default): the reversible 5/3 integer wavelet with OpenJPEG's rate control (a target
  PSNR).  Its decoder is integer arithmetic, so the base decodes to the same samples anywhere.
- ``htj2k``: the 9/7 wavelet with a quantization step (OpenJPH encode); 10x faster to encode, but a
  floating-point decoder.
Samples equal to ``nodata`` (filled in by the pipeline) come back exactly, through a third part
holding their positions.  Either way the stream records a hash of the decoded base, and decoding refuses (DecodeError)
a base that decodes differently, so the bound never silently breaks on another library build.
JPEG XL is not offered as a base: its lossy decoder is floating-point too, and it takes 1-4 bands.

Measured (docs/codecs.md): this beats pure JPEG-LS on band-correlated multiband scenes (the
wavelet codes the bands jointly), and loses on single bands, where JPEG-LS's own prediction wins.
The stream is a recodec band pack (codec ``residual``) with two parts: the base and the residual.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.errors import DecodeError
from recodec.formats.bandpack import is_band_pack, pack_bands, unpack_bands

#: Base settings, coarse to fine: offsets (dB) from the PSNR of uniform noise of the residual step
#: (jpeg2000), or multiples of the residual step (htj2k).  Measured on Landsat scenes: multiband
#: scenes want the base near the step, single bands a coarser one.  The search starts in the middle.
J2K_PSNR_OFFSETS: tuple[float, ...] = (-12.0, -6.0, 0.0, 6.0, 12.0)
HTJ2K_STEP_SCALES: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0, 0.5)


def base_digest(decoded: np.ndarray) -> str:
    """Short hash of a decoded base (its samples as int64), checked on decode."""
    return hashlib.sha256(np.ascontiguousarray(decoded, dtype=np.int64).tobytes()).hexdigest()[:32]


def full_scale(dtype: np.dtype) -> float:
    """The full-scale peak JPEG 2000 measures PSNR and steps against."""
    return float(2 ** (np.dtype(dtype).itemsize * 8) - 1)


class ResidualCodec(LibraryCodec):
    """A JPEG 2000 base plus a JPEG-LS-coded residual quantized to an exact max error."""

    name = "residual"
    summary = "lossy JPEG 2000 base + lossless residual quantized to an exact max error"
    capabilities = Capabilities(
        dtypes=("uint8", "uint16", "int16"), min_bands=1, max_bands=None, lossy=True, lossless=True,
        extension=".rres", tiff_compression=None,
    )
    knob = Knob(
        "max_error", 0.0, math.inf, 0.0, higher_is_better=False, integer=False,
        description="largest allowed |decoded - source| in data units (floored); 0 = lossless",
        lossless_value=0.0,
    )
    params = (
        Param("lossless", bool, False, "force max_error = 0"),
        Param("base", str, "jpeg2000", "base codec: reversible JPEG 2000 or HTJ2K", choices=("jpeg2000", "htj2k")),
        Param("nodata", float, None, "a value kept exactly (the pipeline passes the image's nodata)"),
        Param("trials", int, 4, "base settings tried per image (1-5); the smallest total wins"),
    )

    def version(self) -> str:
        import imagecodecs

        return f"openjpeg {imagecodecs.jpeg2k_version()}, openjph {imagecodecs.htj2k_version()}, " \
               f"charls {imagecodecs.jpegls_version()}"

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        bound = 0 if params["lossless"] else int(math.floor(float(params["max_error"])))
        grid = self._settings(params["base"], array.dtype, 2 * bound + 1)
        trials = max(1, min(len(grid), int(params["trials"])))
        tried: dict[int, bytes] = {}
        # Descent on the (roughly convex) total size: the middle setting, its neighbours, then onwards.
        pos = len(grid) // 2
        tried[pos] = self._encode_with(array, params["base"], grid[pos], bound, params["nodata"])
        while len(tried) < trials:
            steps = [j for j in (pos - 1, pos + 1) if 0 <= j < len(grid) and j not in tried]
            if not steps:
                break
            for j in steps[: trials - len(tried)]:
                tried[j] = self._encode_with(array, params["base"], grid[j], bound, params["nodata"])
            best = min(tried, key=lambda j: len(tried[j]))
            if best == pos:
                break
            pos = best
        return min(tried.values(), key=len)

    @staticmethod
    def _settings(base: str, dtype: np.dtype, step: int) -> list[float]:
        """Base settings, coarse to fine: target PSNRs (jpeg2000) or relative steps (htj2k)."""
        peak = full_scale(dtype)
        if base == "htj2k":
            return [min(1.0, scale * step / peak) for scale in HTJ2K_STEP_SCALES]
        noise_psnr = 20 * math.log10(peak * math.sqrt(12) / step)
        return [max(10.0, noise_psnr + off) for off in J2K_PSNR_OFFSETS]

    def _encode_with(self, array: np.ndarray, base: str, setting: float, bound: int,
                     nodata: float | None = None) -> bytes:
        from recodec.codecs import get_codec

        base_bytes = self._encode_base(array, base, setting)
        decoded = self._decode_base(base_bytes, array.shape)
        step = 2 * bound + 1
        k = np.floor_divide(array.astype(np.int64) - decoded + bound, step)
        residual = get_codec("jpegls").encode(k.astype(np.int32), lossless=True)
        lo = [int(v) for v in array.min(axis=(0, 1))]
        hi = [int(v) for v in array.max(axis=(0, 1))]
        meta = {"bands": array.shape[2], "role": "base", "base": base, "setting": setting, "step": step,
                "lo": lo, "hi": hi, "digest": base_digest(decoded)}
        parts = [(meta, base_bytes), ({"bands": 0}, residual)]
        if nodata is not None and (array == nodata).any():
            # nodata samples come back exactly, not merely within E: their positions, coded losslessly
            mask = get_codec("jpegls").encode((array == nodata).astype(np.uint8), lossless=True)
            parts.append(({"bands": 0, "nodata": float(nodata)}, mask))
        return pack_bands(self.name, array.shape, array.dtype, parts)

    @staticmethod
    def _encode_base(array: np.ndarray, base: str, setting: float) -> bytes:
        import imagecodecs

        if base == "htj2k":
            # 8-bit lossy HTJ2K decodes with wrap-around (codec-api-notes): code 8-bit data as 16-bit.
            data = array.astype(np.uint16) if array.dtype == np.uint8 else array
            scale = full_scale(data.dtype) / full_scale(array.dtype)  # the step is relative to the coded depth
            return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(data), level=setting / scale))
        return bytes(imagecodecs.jpeg2k_encode(array, level=setting, reversible=True, codecformat="J2K"))

    @staticmethod
    def _decode_base(data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        from recodec.codecs import get_codec

        decoded = get_codec("jpeg2000").decode(data)  # OpenJPEG reads both, and returns (H, W, S)
        if decoded.shape != tuple(shape):
            raise DecodeError(f"residual: base decoded to {decoded.shape}, expected {tuple(shape)}")
        return decoded.astype(np.int64)

    def _decode(self, data: bytes) -> np.ndarray:
        from recodec.codecs import get_codec

        header, parts = unpack_bands(data)
        if header["codec"] != self.name or len(parts) not in (2, 3):
            raise DecodeError("not a residual-codec stream")
        (meta, base_bytes), (_, residual) = parts[:2]
        shape, dtype = tuple(header["shape"]), np.dtype(header["dtype"])
        decoded = self._decode_base(base_bytes, shape)
        if base_digest(decoded) != meta["digest"]:
            raise DecodeError("residual: the base decodes differently from when it was encoded; "
                              "the error bound cannot be guaranteed with this decoder build")
        k = get_codec("jpegls").decode(residual).astype(np.int64)
        if k.shape != shape:
            raise DecodeError(f"residual: residual decoded to {k.shape}, expected {shape}")
        out = np.clip(decoded + k * int(meta["step"]), np.asarray(meta["lo"]), np.asarray(meta["hi"])).astype(dtype)
        if len(parts) == 3:
            mask = get_codec("jpegls").decode(parts[2][1]).astype(bool)
            if mask.shape != shape:
                raise DecodeError(f"residual: nodata mask decoded to {mask.shape}, expected {shape}")
            out[mask] = parts[2][0]["nodata"]
        return out

    def sniff(self, data: bytes, /) -> bool:
        return is_band_pack(data, self.name)
