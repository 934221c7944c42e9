"""Relative max-error bounds ("max_abs_error<=0.5%") and the one-encode search of exact-bound codecs."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.errors import ConfigError
from recodec.target import codec_candidate, dynamic_range, image_target, parse_target, search
from tests.codecs.contract import make_image


def test_relative_bound_parses_and_prints_back() -> None:
    target = parse_target("max_abs_error<=0.5%, psnr>=40")
    assert target.relative and str(target) == "max_abs_error<=0.5%,psnr>=40"
    assert parse_target(str(target)) == target
    assert not parse_target("max_abs_error<=3").relative


@pytest.mark.parametrize("text", ["psnr>=40%", "max_abs_error<=101%", "max_abs_error<=-1%", "max_abs_error<=x%"])
def test_bad_relative_bounds_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(text)


def test_an_unresolved_relative_bound_cannot_be_checked() -> None:
    with pytest.raises(ValueError):
        parse_target("max_abs_error<=1%").satisfied({"max_abs_error": 0.0})


def test_dynamic_range_excludes_nodata_and_nan() -> None:
    arr = np.array([[-32768, 10], [250, -32768]], dtype=np.int16)
    assert dynamic_range(arr, -32768.0) == 240.0
    assert dynamic_range(arr) == 250.0 + 32768.0
    floats = np.array([np.nan, 1.0, 3.5, np.inf], dtype=np.float32)
    assert dynamic_range(floats, float("nan")) == 2.5
    assert dynamic_range(np.full((2, 2), 7, np.uint8), 7.0) == 0.0


def test_image_target_resolves_per_image_and_reports_both_forms() -> None:
    arr = np.array([[100, 300], [1100, 0]], dtype=np.uint16)
    target, columns = image_target("max_abs_error<=0.5%,bpp<=4", arr, nodata=0.0)
    assert target is not None and not target.relative
    assert target.bound_value("max_abs_error") == pytest.approx(5.0)  # 0.5% of 1100 - 100
    assert columns == {"max_error_bound": pytest.approx(5.0), "max_error_relative": pytest.approx(0.005)}
    _, absolute = image_target("max_abs_error<=7", arr)
    assert absolute == {"max_error_bound": 7.0, "max_error_relative": None}
    assert image_target(None, arr) == (None, {})


def test_with_values_replaces_relative_bounds_for_reconcile() -> None:
    target = parse_target("max_abs_error<=1%").with_values({"max_abs_error": 12.5})
    assert target.satisfied({"max_abs_error": 12.5}) and not target.satisfied({"max_abs_error": 13})


@pytest.mark.parametrize("codec", ["jpegls", "lerc"])
def test_exact_bound_codecs_meet_a_max_error_target_in_one_encode(codec: str) -> None:
    src = make_image("uint16", 3, height=64, width=64, value_range=(1000, 9000))
    target, _ = image_target("max_abs_error<=0.5%", src)
    bound = target.bound_value("max_abs_error")
    cand = codec_candidate(codec, src, max_error=bound, structural=False)
    result = search(cand.encode, cand.measure, cand.knob, target, grid=cand.grid)
    assert result.met and result.attempts == 1 and result.knob_value == pytest.approx(bound)
    assert result.measured["max_abs_error"] <= bound
