"""Tests of recodec.target: target parsing, guarded knob bisection, multi-codec choice."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pytest

from recodec.codecs.base import Knob
from recodec.errors import CodecError, ConfigError, UnsupportedImageError
from recodec.target import (
    UNREACHABLE,
    Candidate,
    attempt_bound,
    codec_candidate,
    knob_grid,
    parse_target,
    search,
    search_codecs,
)

QUALITY = Knob("quality", 1, 100, 85, higher_is_better=True, integer=True, description="1-100")
DISTANCE = Knob("distance", 0.01, 25.0, 1.0, higher_is_better=False, integer=False,
                description="distance", lossless_value=0.0)


class FakeCodec:
    """encode(knob) -> bytes whose length follows ``size``; measure() reads the knob back.

    Counts calls so tests can check the bound and that every encode is measured exactly once.
    """

    def __init__(self, psnr: Callable[[float], float], size: Callable[[float], int],
                 fail_at: set[float] | None = None) -> None:
        self.psnr, self.size, self.fail_at = psnr, size, fail_at or set()
        self.encodes = 0
        self.measures = 0

    def encode(self, value: float) -> bytes:
        self.encodes += 1
        if value in self.fail_at:
            raise CodecError("fake encoder refuses this value")
        head = repr(float(value)).encode()
        return head + b"\0" * max(self.size(value) - len(head), 1)

    def measure(self, data: bytes) -> dict[str, Any]:
        self.measures += 1
        value = float(data.split(b"\0")[0])
        return {"psnr": self.psnr(value), "bpp": len(data) / 100.0, "knob": value}


def _jpeg_like() -> FakeCodec:
    return FakeCodec(lambda q: 20 + 0.3 * q, lambda q: int(100 + 20 * q))


# -- parsing ---------------------------------------------------------------------------------


def test_parse_valid_and_round_trip() -> None:
    t = parse_target("psnr>=40, SSIM >= 0.95,max_abs_error<=20,bpp<=2,ms-ssim>=0.99")
    assert [(b.metric, b.op, b.value) for b in t.bounds] == [
        ("psnr", ">=", 40.0), ("ssim", ">=", 0.95), ("max_abs_error", "<=", 20.0),
        ("bpp", "<=", 2.0), ("ms_ssim", ">=", 0.99),
    ]
    assert str(t) == "psnr>=40,ssim>=0.95,max_abs_error<=20,bpp<=2,ms_ssim>=0.99"
    assert parse_target(str(t)) == t
    odd = parse_target("psnr>=41.123456789,bpp<=1e-3")
    assert parse_target(str(odd)) == odd


@pytest.mark.parametrize("text", [
    "", " , ", "psnr<=40", "bpp>=2", "max_abs_error>=3", "foo>=1", "psnr>40", "psnr=40",
    "psnr>=abc", "ssim>=1.5", "psnr>=40,psnr>=42", "bpp<=0", "max_abs_error<=-1", "psnr>=nan",
    "psnr 40",
])
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(text)


def test_satisfied() -> None:
    t = parse_target("psnr>=40,max_abs_error<=2")
    assert t.satisfied({"psnr": 40.0, "max_abs_error": 2})
    assert t.satisfied({"psnr": math.inf, "max_abs_error": 0})
    assert not t.satisfied({"psnr": 39.9, "max_abs_error": 0})
    assert not t.satisfied({"psnr": 45.0})                      # missing metric fails
    assert not t.satisfied({"psnr": math.nan, "max_abs_error": 0})
    assert t.failures({"psnr": 39.0, "max_abs_error": 1}) == ["psnr>=40 (got 39.0)"]


# -- one knob ----------------------------------------------------------------------------------


def test_monotone_integer_knob_finds_threshold() -> None:
    fake = _jpeg_like()
    res = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=35"))
    assert res.met and res.reason is None
    assert res.knob_value == 50 and isinstance(res.knob_value, int)
    assert res.measured["psnr"] >= 35 and res.data is not None
    assert res.attempts == fake.encodes == fake.measures == len(res.trace) <= attempt_bound(100) == 9


def test_lower_is_better_float_knob() -> None:
    fake = FakeCodec(lambda d: 50 - d, lambda d: int(2000 / (1 + d)))
    res = search(fake.encode, fake.measure, DISTANCE, parse_target("psnr>=40"))
    assert res.met and res.knob_value is not None
    assert 10 / 1.04 <= res.knob_value <= 10  # within one step of the geometric grid
    assert res.attempts <= attempt_bound(len(knob_grid(DISTANCE))) == 11


def test_dip_never_returns_failing_result() -> None:
    # PSNR rises with quality except a one-point dip at q=50, right where bisection probes.
    fake = FakeCodec(lambda q: 5.0 if q == 50 else 20 + 0.3 * q, lambda q: int(100 + 20 * q))
    target = parse_target("psnr>=30")
    res = search(fake.encode, fake.measure, QUALITY, target)
    assert any(a.knob_value == 50 and not a.passed for a in res.trace)  # it did hit the dip
    assert res.met and target.satisfied(res.measured)
    assert res.knob_value == 49  # the guard probe below the dip passes and is smaller
    assert res.attempts <= attempt_bound(100)


def test_random_non_monotone_curves_are_safe() -> None:
    rng = np.random.default_rng(7)
    target = parse_target("psnr>=35")
    for _ in range(100):
        noise = rng.normal(0, 3, 101)
        fake = FakeCodec(lambda q, n=noise: 20 + 0.3 * q + n[int(q)], lambda q: int(100 + 20 * q))
        res = search(fake.encode, fake.measure, QUALITY, target)
        assert res.attempts <= attempt_bound(100)
        if res.met:
            assert target.satisfied(res.measured) and res.measured["knob"] == res.knob_value
            passing = [a for a in res.trace if a.passed]
            assert len(res.data or b"") == min(a.size for a in passing)
        else:
            assert res.data is None and all(not a.passed for a in res.trace)


def test_size_not_monotone_keeps_smallest_passing() -> None:
    # A higher quality that happens to be smaller must win over the bisection's endpoint.
    fake = FakeCodec(lambda q: 20 + 0.3 * q, lambda q: 50 if q == 100 else int(100 + 20 * q))
    res = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=35"))
    assert res.met and res.knob_value == 100


def test_unreachable_target() -> None:
    fake = _jpeg_like()
    res = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=80"))
    assert not res.met and res.data is None and res.knob_value is None
    assert res.reason is not None and res.reason.startswith(UNREACHABLE)
    assert res.attempts == 1 and res.measured["psnr"] == pytest.approx(50.0)  # closest: top quality


def test_lossless_value_only_when_asked() -> None:
    fake = FakeCodec(lambda d: math.inf if d == 0 else 50 - d, lambda d: 5000 if d == 0 else int(2000 / (1 + d)))
    target = parse_target("psnr>=60")
    assert not search(fake.encode, fake.measure, DISTANCE, target).met
    res = search(fake.encode, fake.measure, DISTANCE, target, allow_lossless=True)
    assert res.met and res.lossless and res.knob_value == 0.0
    assert res.attempts == 2  # top of the lossy range, then lossless


def test_conflicting_bpp_bound_is_unreachable() -> None:
    fake = _jpeg_like()
    res = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=35,bpp<=5"))
    assert not res.met and "bpp<=5" in (res.reason or "")
    ok = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=35,bpp<=20"))
    assert ok.met and ok.knob_value == 50


def test_bpp_only_target_maximises_quality_within_budget() -> None:
    fake = _jpeg_like()  # bpp = (100 + 20 q) / 100
    res = search(fake.encode, fake.measure, QUALITY, parse_target("bpp<=10"))
    assert res.met and res.knob_value == 45 and res.measured["bpp"] <= 10


def test_knob_grids() -> None:
    assert knob_grid(QUALITY)[:2] == [1.0, 2.0] and len(knob_grid(QUALITY)) == 100
    distance = knob_grid(DISTANCE)  # geometric, ordered from lowest to highest quality
    assert distance[0] == 25.0 and distance[-1] == pytest.approx(0.01) and len(distance) == 257
    assert all(a > b for a, b in zip(distance, distance[1:]))
    open_ended = Knob("max_error", 0.0, math.inf, 0.0, higher_is_better=False, integer=False, description="e")
    with pytest.raises(ConfigError):
        knob_grid(open_ended)
    errors = knob_grid(open_ended, high=255.0, floor=1.0)
    assert errors[0] == 255.0 and errors[-2] == pytest.approx(1.0) and errors[-1] == 0.0
    assert knob_grid(open_ended, high=0.5, floor=1.0) == [0.5, 0.0]
    level = Knob("psnr", 10.0, 200.0, 50.0, higher_is_better=True, integer=False, description="dB")
    assert knob_grid(level)[:2] == [10.0, pytest.approx(10 + 190 / 256)]
    lmbda = Knob("lmbda", 0.001, 10.0, 0.01, higher_is_better=True, integer=False, description="l", geometric=True)
    lambdas = knob_grid(lmbda)  # a rate–distortion lambda spans decades: geometric, lowest quality first
    assert lambdas[0] == pytest.approx(0.001) and lambdas[-1] == pytest.approx(10.0)
    assert lambdas[128] == pytest.approx(0.1)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100, 129, 257])
def test_attempt_bound_respected(n: int) -> None:
    knob = Knob("k", 1, n, 1, higher_is_better=True, integer=True, description="k")
    for threshold in range(0, n + 2, max(1, n // 9)):
        fake = FakeCodec(lambda q, t=threshold: 100.0 if q >= t else 0.0, lambda q: int(10 + q))
        res = search(fake.encode, fake.measure, knob, parse_target("psnr>=50"))
        assert fake.encodes == res.attempts <= attempt_bound(n)
        assert res.met == (threshold <= n)
        if res.met:
            assert res.knob_value == max(threshold, 1)
    fake = _jpeg_like()
    capped = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=35"), max_attempts=3)
    assert capped.attempts == 3 and capped.met and capped.measured["psnr"] >= 35


def test_encode_errors_count_as_failed_attempts() -> None:
    fake = FakeCodec(lambda q: 20 + 0.3 * q, lambda q: int(100 + 20 * q), fail_at={50.0})
    res = search(fake.encode, fake.measure, QUALITY, parse_target("psnr>=30"))
    assert res.met and any(a.error for a in res.trace)
    assert 34 <= res.knob_value <= 51 and res.measured["psnr"] >= 30


# -- several codecs ----------------------------------------------------------------------------


def test_search_codecs_picks_smallest_and_explains() -> None:
    big, small = _jpeg_like(), FakeCodec(lambda q: 20 + 0.3 * q, lambda q: int(50 + 10 * q))
    weak = FakeCodec(lambda q: 10 + 0.1 * q, lambda q: int(10 + q))

    def unsupported(_: float) -> bytes:
        raise UnsupportedImageError("cannot hold 7 bands")

    candidates = [
        Candidate("big", big.encode, big.measure, QUALITY),
        Candidate("skipped", big.encode, big.measure, QUALITY, skip_reason="unsupported: uint16"),
        Candidate("small", small.encode, small.measure, QUALITY),
        Candidate("weak", weak.encode, weak.measure, QUALITY),
        Candidate("raises", unsupported, big.measure, QUALITY),
    ]
    out = search_codecs(candidates, parse_target("psnr>=35"))
    assert out.met and out.codec == "small" and out.best is not None and out.best.knob_value == 50
    assert out.reasons["small"] == "won"
    assert out.reasons["big"].startswith("met, but")
    assert out.reasons["skipped"] == "skipped: unsupported: uint16"
    assert out.reasons["weak"].startswith(UNREACHABLE)
    assert out.reasons["raises"].startswith("skipped: unsupported")
    none = search_codecs(candidates[3:], parse_target("psnr>=35"))
    assert not none.met and none.codec is None


# -- real codecs -----------------------------------------------------------------------------


def _codec(name: str) -> Any:
    codecs = pytest.importorskip("recodec.codecs")
    try:
        codec = codecs.get_codec(name)
    except Exception as exc:  # not written yet, or its module fails to import
        pytest.skip(f"codec {name} not importable: {exc}")
    if not codec.available():
        pytest.skip(f"codec {name} dependencies missing")
    return codec


def _smooth(shape: tuple[int, int, int], dtype: type, peak: int) -> np.ndarray:
    h, w, s = shape
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(5)
    bands = [0.5 + 0.3 * np.sin(xx / (6 + b)) * np.cos(yy / (4 + b)) + 0.05 * rng.random((h, w)) for b in range(s)]
    return np.clip(np.stack(bands, axis=2) * peak, 0, peak).astype(dtype)


def test_lerc_multiband_uint16_max_abs_error() -> None:
    codec = _codec("lerc")
    image = _smooth((48, 40, 5), np.uint16, 60000)
    target = parse_target("max_abs_error<=40")
    cand = codec_candidate(codec, image)
    assert cand.skip_reason is None and cand.grid is not None
    res = search(cand.encode, cand.measure, cand.knob, target, grid=cand.grid)
    assert res.met and res.data is not None
    # integer data: any max_error in [40, 41) allows errors of 40 at most
    assert res.measured["max_abs_error"] <= 40 and 0 < res.knob_value < 41
    assert res.attempts <= attempt_bound(len(cand.grid))
    # The winner's decoded array came from the search's own measure: same as decoding again.
    np.testing.assert_array_equal(res.measured["decoded"], codec.decode(res.data))
    assert np.abs(res.measured["decoded"].astype(np.int64) - image).max() <= 40
    lossless = search(cand.encode, cand.measure, cand.knob, parse_target("max_abs_error<=0"), grid=cand.grid)
    assert lossless.met and lossless.knob_value == 0.0 and lossless.measured["psnr"] == math.inf


def test_codec_candidates_skip_and_pick() -> None:
    jpeg = _codec("jpeg")
    u16 = _smooth((32, 32, 3), np.uint16, 60000)
    assert codec_candidate(jpeg, u16).skip_reason is not None
    rgb = _smooth((64, 64, 3), np.uint8, 255)
    cands = [codec_candidate(jpeg, rgb, params={"subsampling": "4:4:4"}), codec_candidate(jpeg, u16)]
    cands[1].name = "jpeg-u16"
    out = search_codecs(cands, parse_target("psnr>=38"))
    assert out.met and out.codec == "jpeg" and out.best is not None
    assert out.best.measured["psnr"] >= 38 and out.reasons["jpeg-u16"].startswith("skipped: unsupported")
    assert out.best.attempts <= attempt_bound(100)
