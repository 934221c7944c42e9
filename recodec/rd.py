"""Bjøntegaard delta metrics between two rate-distortion curves (numpy only).

BD-rate is the average rate difference between two RD curves over the quality
interval they share (G. Bjøntegaard, "Calculation of average PSNR differences
between RD-curves", ITU-T VCEG-M33, 2001).  VCEG-M33 fitted one cubic polynomial
per curve; like the JCT-VC/JVET common-test-conditions spreadsheets (JCTVC-L1100)
and the FAU-LMS ``bjontegaard`` package, this module uses piecewise cubic Hermite
interpolation (PCHIP, Fritsch & Carlson 1980, with the derivative rules of Moler's
``pchip`` / scipy's ``PchipInterpolator``), which never overshoots between points
and so does not invent gains on oddly shaped curves.  The interpolant is integrated
exactly, piece by piece.

Input handling: points are sorted along the interpolation axis, so order does not
matter; points whose quality is not finite (PSNR = inf for a lossless point) are
dropped; points sharing one abscissa are merged by averaging their ordinates.  A
result that is undefined (fewer than 2 usable points, curves that do not overlap)
is NaN, with the reason in :class:`BDResult` (``*_detail`` functions) and in a
:class:`BDWarning`.  Rates may be in any positive unit (bpp, bytes, kbit/s) as long
as both curves use the same.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


class BDWarning(RuntimeWarning):
    """A Bjøntegaard delta could not be computed (the result is NaN)."""


@dataclass(frozen=True)
class BDResult:
    """A Bjøntegaard delta with why it is NaN, if it is, and the interval averaged over."""

    value: float
    reason: str | None = None
    interval: tuple[float, float] | None = None


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shape-preserving derivatives at the knots (Fritsch-Carlson, Moler's end conditions)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.size
    if n == 2:
        return np.array([delta[0], delta[0]])
    d = np.zeros(n)
    # Interior: weighted harmonic mean of the neighbouring secants, 0 at local extrema.
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same_sign = (np.sign(delta[:-1]) * np.sign(delta[1:])) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, delta0: float, delta1: float) -> float:
    """Three-point end derivative, clipped so the end piece stays monotone."""
    d = ((2 * h0 + h1) * delta0 - h0 * delta1) / (h0 + h1)
    if np.sign(d) != np.sign(delta0):
        return 0.0
    if np.sign(delta0) != np.sign(delta1) and abs(d) > abs(3 * delta0):
        return 3 * delta0
    return float(d)


def pchip_integral(x: Sequence[float], y: Sequence[float], lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] of the PCHIP interpolant through strictly increasing ``x``."""
    xs, ys = np.asarray(x, float), np.asarray(y, float)
    if xs.size < 2 or np.any(np.diff(xs) <= 0):
        raise ValueError("pchip_integral needs at least 2 strictly increasing abscissae")
    if not xs[0] <= lo <= hi <= xs[-1]:
        raise ValueError(f"[{lo}, {hi}] is outside the data range [{xs[0]}, {xs[-1]}]")
    d = _pchip_slopes(xs, ys)
    total = 0.0
    for k in range(xs.size - 1):
        a, b = max(lo, xs[k]), min(hi, xs[k + 1])
        if b <= a:
            continue
        h = xs[k + 1] - xs[k]
        delta = (ys[k + 1] - ys[k]) / h
        # Piece as a polynomial in s = x - x_k: y_k + d_k s + c2 s^2 + c3 s^3.
        c2 = (3 * delta - 2 * d[k] - d[k + 1]) / h
        c3 = (d[k] + d[k + 1] - 2 * delta) / h**2

        def antiderivative(s: float) -> float:
            return ys[k] * s + d[k] * s**2 / 2 + c2 * s**3 / 3 + c3 * s**4 / 4

        total += antiderivative(b - xs[k]) - antiderivative(a - xs[k])
    return float(total)


def _curve(xs: Sequence[float], ys: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points sorted by x, duplicates of x merged by averaging y."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    ux, inverse = np.unique(x, return_inverse=True)
    uy = np.bincount(inverse, weights=y, minlength=ux.size) / np.bincount(inverse, minlength=ux.size)
    return ux, uy


def _check(rate: Sequence[float], dist: Sequence[float], name: str) -> np.ndarray:
    r = np.asarray(rate, float)
    if r.shape != np.asarray(dist, float).shape or r.ndim != 1:
        raise ValueError(f"{name}: rate and distortion must be 1-D sequences of the same length")
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"{name}: rates must be finite and positive, got {r.tolist()}")
    return np.log(r)


def _average_gap(x_a: np.ndarray, y_a: np.ndarray, x_t: np.ndarray, y_t: np.ndarray,
                 axis: str) -> BDResult:
    """Mean of (test - anchor) of y over the overlap of the x ranges, as a BDResult."""
    (xa, ya), (xt, yt) = _curve(x_a, y_a), _curve(x_t, y_t)
    for name, x in (("anchor", xa), ("test", xt)):
        if x.size < 2:
            return BDResult(math.nan, f"{name} curve has fewer than 2 points with distinct finite {axis}")
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if not hi > lo:
        return BDResult(math.nan, f"curves do not overlap in {axis}: anchor [{xa[0]:g}, {xa[-1]:g}], "
                                  f"test [{xt[0]:g}, {xt[-1]:g}]")
    gap = (pchip_integral(xt, yt, lo, hi) - pchip_integral(xa, ya, lo, hi)) / (hi - lo)
    return BDResult(gap, None, (float(lo), float(hi)))


def _warn(result: BDResult) -> float:
    if result.reason is not None:
        warnings.warn(result.reason, BDWarning, stacklevel=3)
    return result.value


def bd_rate_detail(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
                   dist_test: Sequence[float]) -> BDResult:
    """BD-rate in percent as a :class:`BDResult` (interval = the shared quality range)."""
    gap = _average_gap(np.asarray(dist_anchor, float), _check(rate_anchor, dist_anchor, "anchor"),
                       np.asarray(dist_test, float), _check(rate_test, dist_test, "test"), "quality")
    if gap.reason is not None:
        return gap
    # The mean gap is in natural-log rate: exp turns it into a rate ratio.
    return BDResult((math.exp(gap.value) - 1.0) * 100.0, None, gap.interval)


def bd_rate(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
            dist_test: Sequence[float]) -> float:
    """Bjøntegaard delta rate in % at equal quality (negative: the test saves bits); NaN if undefined.

    ``dist_*`` is the quality (PSNR in dB, or SSIM...: higher is better).
    """
    return _warn(bd_rate_detail(rate_anchor, dist_anchor, rate_test, dist_test))


def bd_psnr_detail(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
                   dist_test: Sequence[float]) -> BDResult:
    """BD-PSNR as a :class:`BDResult` (interval = the shared natural-log-rate range)."""
    return _average_gap(_check(rate_anchor, dist_anchor, "anchor"), np.asarray(dist_anchor, float),
                        _check(rate_test, dist_test, "test"), np.asarray(dist_test, float), "log-rate")


def bd_psnr(rate_anchor: Sequence[float], dist_anchor: Sequence[float], rate_test: Sequence[float],
            dist_test: Sequence[float]) -> float:
    """Bjøntegaard delta quality at equal rate, in the quality's units (dB for PSNR); NaN if undefined."""
    return _warn(bd_psnr_detail(rate_anchor, dist_anchor, rate_test, dist_test))


__all__ = ["BDResult", "BDWarning", "bd_psnr", "bd_psnr_detail", "bd_rate", "bd_rate_detail", "pchip_integral"]
