"""Tests of recodec.rd: Bjøntegaard delta rate / PSNR with PCHIP interpolation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recodec.rd import BDWarning, bd_psnr, bd_psnr_detail, bd_rate, bd_rate_detail, pchip_integral

RATE = [0.25, 0.5, 1.0, 2.0, 4.0]
PSNR = [30.0, 33.5, 37.0, 40.0, 42.5]


def test_half_rate_is_minus_50_percent() -> None:
    assert bd_rate(RATE, PSNR, [r / 2 for r in RATE], PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, [r * 1.1 for r in RATE], PSNR) == pytest.approx(10.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-12)


def test_constant_psnr_shift() -> None:
    assert bd_psnr(RATE, PSNR, RATE, [p + 1.5 for p in PSNR]) == pytest.approx(1.5, abs=1e-9)
    # Half the rate at the same PSNR is a gain in BD-PSNR too.
    assert bd_psnr(RATE, PSNR, [r / 2 for r in RATE], PSNR) > 0


def test_reference_values() -> None:
    # The FAU-LMS bjontegaard example (libx265 presets); values cross-checked against
    # scipy.interpolate.PchipInterpolator(...).integrate on the same data.
    r1 = [9487.76, 4593.60, 2486.44, 1358.24]
    p1 = [40.037, 38.615, 36.845, 34.851]
    r2 = [9787.80, 4469.00, 2451.52, 1356.24]
    p2 = [40.121, 38.651, 36.970, 34.987]
    assert bd_rate(r1, p1, r2, p2) == pytest.approx(-4.417485350589, abs=1e-8)
    assert bd_psnr(r1, p1, r2, p2) == pytest.approx(0.11969278542, abs=1e-8)


def test_order_does_not_matter() -> None:
    rng = np.random.default_rng(3)
    order_a, order_t = rng.permutation(len(RATE)), rng.permutation(len(RATE))
    test_rate = [r * 0.8 for r in RATE]
    test_psnr = [p + 0.2 for p in PSNR]
    sorted_result = bd_rate(RATE, PSNR, test_rate, test_psnr)
    shuffled = bd_rate([RATE[i] for i in order_a], [PSNR[i] for i in order_a],
                       [test_rate[i] for i in order_t], [test_psnr[i] for i in order_t])
    assert shuffled == pytest.approx(sorted_result, abs=1e-12)


def test_partial_overlap_uses_shared_interval() -> None:
    # PSNR linear in log-rate: PCHIP reproduces it exactly from any subset of the points.
    linear = [30.0 + 3.0 * math.log2(r) for r in RATE]
    detail = bd_rate_detail(RATE, linear, [r / 2 for r in RATE[2:]], linear[2:])
    assert detail.reason is None and detail.interval == (30.0, 36.0)
    assert detail.value == pytest.approx(-50.0, abs=1e-9)


def test_non_overlapping_curves_give_nan_with_reason() -> None:
    with pytest.warns(BDWarning, match="do not overlap"):
        value = bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR])
    assert math.isnan(value)
    detail = bd_psnr_detail(RATE, PSNR, [r * 100 for r in RATE], PSNR)
    assert math.isnan(detail.value) and "do not overlap" in (detail.reason or "")


def test_too_few_points_and_lossless_points() -> None:
    with pytest.warns(BDWarning, match="fewer than 2"):
        assert math.isnan(bd_rate([1.0], [30.0], RATE, PSNR))
    # An infinite-PSNR (lossless) point is dropped, not allowed to poison the integral.
    with_lossless = bd_rate(RATE + [10.0], PSNR + [math.inf], [r / 2 for r in RATE], PSNR)
    assert with_lossless == pytest.approx(-50.0)


def test_invalid_rates_raise() -> None:
    with pytest.raises(ValueError):
        bd_rate([0.0, 1.0], [30.0, 40.0], RATE, PSNR)
    with pytest.raises(ValueError):
        bd_rate([1.0, 2.0, 3.0], [30.0, 40.0], RATE, PSNR)


def test_pchip_integral_exact_on_linear_and_monotone() -> None:
    x = [0.0, 1.0, 3.0, 4.0]
    assert pchip_integral(x, [2 * v + 1 for v in x], 0.5, 3.5) == pytest.approx((3.5**2 + 3.5) - (0.25 + 0.5))
    # Shape preservation: a step-like monotone curve must not overshoot its data range.
    xs, ys = [0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 1.0]
    fine = np.linspace(0, 3, 31)
    pieces = [pchip_integral(xs, ys, a, b) / (b - a) for a, b in zip(fine, fine[1:])]
    assert min(pieces) >= -1e-12 and max(pieces) <= 1 + 1e-12
    with pytest.raises(ValueError):
        pchip_integral(xs, ys, -1.0, 1.0)
