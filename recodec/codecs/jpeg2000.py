"""JPEG 2000 (OpenJPEG) and High-Throughput JPEG 2000 (OpenJPH), up to 16 bits, any band count.

Both codecs share one knob, ``psnr``: a target PSNR in dB against the dtype's full scale
(255 for uint8, 65535 for uint16 and int16), higher is better, 0 means lossless (reversible
5/3 wavelet); ``lossless=True`` does the same.

- ``jpeg2000`` passes the target to OpenJPEG's rate control (its ``level``).  OpenJPEG checks the
  PSNR per component before the colour transform, so 3-band 8-bit images land about 3.5 dB under
  the target; gray and multiband images land within about 0.3 dB.  Writes a JP2 file.
- ``htj2k``'s native ``level`` is a quantisation step (0-1 of full scale), and PSNR is not
  monotonic in it.  recodec runs a measured search instead: it encodes with a few steps,
  decodes each, and keeps the smallest stream whose measured PSNR reaches the target (the
  lossless stream if none does).  So ``psnr`` is honoured exactly, at a few encodes' cost.
  Writes a raw J2K codestream (.j2c) with the HT capability flag.

Decoding goes through OpenJPEG for both: it reads HTJ2K too, clamps lossy 8-bit output (OpenJPH's
decoder wraps values above 255 round to 0) and reports truncated codestreams (OpenJPH does not).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.formats.magic import J2K_SOC_SIZ, JP2_SIGNATURE
from recodec.metrics import psnr

# Rsiz bit 14 marks a codestream that uses Part 15 (HT) block coding.
_RSIZ_HT = 0x4000

_CAPABILITIES = Capabilities(
    dtypes=("uint8", "uint16", "int16"), min_bands=1, max_bands=None, lossy=True, lossless=True,
    extension=".jp2", tiff_compression="jpeg2000",
)
_PSNR_KNOB = Knob(
    "psnr", 10.0, 200.0, 50.0, higher_is_better=True, integer=False,
    description="target PSNR in dB against the dtype's full scale; 0 = lossless",
    lossless_value=0.0,
)
_LOSSLESS = Param("lossless", bool, False, "reversible 5/3 wavelet, bit-exact")


def codestream_rsiz(data: bytes) -> int | None:
    """The Rsiz capabilities field of a raw J2K codestream, or None if ``data`` is not one."""
    if data[:4] != J2K_SOC_SIZ or len(data) < 8:
        return None
    return int.from_bytes(data[6:8], "big")


def full_scale(dtype: np.dtype) -> float:
    """Peak value JPEG 2000 rate control measures PSNR against (2**bits - 1)."""
    return float(2 ** (np.dtype(dtype).itemsize * 8) - 1)


def measured_psnr(reference: np.ndarray, decoded: np.ndarray, peak: float) -> float:
    """Rate-control PSNR (whole image, full-scale peak): the codec's target definition, not a report metric."""
    return psnr(reference, decoded, peak)


def search_step(encode: Callable[[float], bytes], decode: Callable[[bytes], np.ndarray],
                array: np.ndarray, target: float, *, max_evals: int = 12) -> bytes:
    """Smallest stream from ``encode(step)`` whose decoded PSNR reaches ``target``.

    Starts from the uniform-quantiser estimate PSNR ~ 10.8 - 20 log10(step), walks by factors of
    2 until the target is bracketed, then bisects in log(step).  Every evaluated stream is kept
    and the smallest passing one wins, so a non-monotonic PSNR(step) cannot pick a failing one.
    """
    peak = full_scale(array.dtype)
    passing: list[bytes] = []
    tried: dict[float, bool] = {}

    def ok(log_step: float) -> bool:
        key = round(log_step, 6)
        if key not in tried:
            data = encode(10.0 ** log_step)
            tried[key] = measured_psnr(array, decode(data), peak) >= target
            if tried[key]:
                passing.append(data)
        return tried[key]

    lo_bound, hi_bound = -5.0, 0.0  # steps below 1e-5 are lossless in OpenJPH, 1 is full scale
    guess = min(max((10.8 - target) / 20.0, lo_bound), hi_bound)
    good, bad = (guess, None) if ok(guess) else (None, guess)
    while good is None and len(tried) < max_evals and bad > lo_bound:
        bad_next = max(bad - math.log10(2), lo_bound)
        if ok(bad_next):
            good = bad_next
        else:
            bad = bad_next
    while bad is None and len(tried) < max_evals and good < hi_bound:
        good_next = min(good + math.log10(2), hi_bound)
        if ok(good_next):
            good = good_next
        else:
            bad = good_next
    while good is not None and bad is not None and len(tried) < max_evals and bad - good > 0.01:
        mid = (good + bad) / 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    lossless = encode(0.0)
    return min(passing + [lossless], key=len)


def _decode_j2k(data: bytes) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpeg2k_decode(data)


class _J2kBase(LibraryCodec):
    """What JPEG 2000 and HTJ2K share: knob, capabilities, OpenJPEG decoding."""

    capabilities = _CAPABILITIES
    knob = _PSNR_KNOB
    params = (_LOSSLESS,)

    @staticmethod
    def _is_lossless(params: dict[str, Any]) -> bool:
        return bool(params["lossless"]) or not params["psnr"]

    def _decode(self, data: bytes) -> np.ndarray:
        return _decode_j2k(data)


class Jpeg2000Codec(_J2kBase):
    """JPEG 2000 Part 1 via OpenJPEG (9/7 lossy, 5/3 reversible)."""

    name = "jpeg2000"
    summary = "JPEG 2000 (OpenJPEG via imagecodecs), wavelet, PSNR-targeted rate control"

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.jpeg2k_version()

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._is_lossless(params):
            return {"level": 0, "reversible": True}
        return {"level": float(params["psnr"]), "reversible": False}

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._options(params)

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        return imagecodecs.jpeg2k_encode(array, codecformat="JP2", **self._options(params))

    def sniff(self, data: bytes, /) -> bool:
        rsiz = codestream_rsiz(data)
        return data[:12] == JP2_SIGNATURE or (rsiz is not None and not rsiz & _RSIZ_HT)


class Htj2kCodec(_J2kBase):
    """HTJ2K (JPEG 2000 Part 15) via OpenJPH, with a measured PSNR search."""

    name = "htj2k"
    summary = "High-Throughput JPEG 2000 (OpenJPH via imagecodecs), measured PSNR target"
    capabilities = Capabilities(**{**_CAPABILITIES.__dict__, "extension": ".j2c", "tiff_compression": None})

    def version(self) -> str:
        import imagecodecs

        return f"{imagecodecs.htj2k_version()} (decoded by {imagecodecs.jpeg2k_version()})"

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        def encode(step: float) -> bytes:
            return imagecodecs.htj2k_encode(array, level=step)

        if self._is_lossless(params):
            return encode(0.0)
        return search_step(encode, _decode_j2k, array, float(params["psnr"]))

    def sniff(self, data: bytes, /) -> bool:
        rsiz = codestream_rsiz(data)
        return rsiz is not None and bool(rsiz & _RSIZ_HT)
