"""Behaviour of the overfit codec: rate–distortion knob, layouts, nodata, warm starts, stream."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs.base import search_session, search_state
from recodec.metrics import psnr
from tests.codecs.overfit.conftest import STEPS


def test_lmbda_trades_rate_for_quality(overfit, small_rgb: np.ndarray) -> None:
    low = overfit.encode(small_rgb, lmbda=0.0005, iterations=3 * STEPS)
    high = overfit.encode(small_rgb, lmbda=0.2, iterations=3 * STEPS)
    assert len(high) > len(low)
    assert psnr(small_rgb, overfit.decode(high), 255) > psnr(small_rgb, overfit.decode(low), 255) + 2


def test_stream_header_describes_the_image(overfit, stream: bytes, small_rgb: np.ndarray) -> None:
    from recodec.codecs.overfit import bitstream

    header, params, words = bitstream.unpack(stream)
    assert (header.height, header.width, header.arch.bands, header.dtype) == (37, 53, 3, "uint8")
    assert (header.low, header.span) == (0, 255)
    assert len(stream) == bitstream.HEADER_SIZE + 4 + len(params) + len(words)  # every byte is accounted


def test_sixteen_band_int16(overfit) -> None:
    rng = np.random.default_rng(3)
    src = (rng.normal(0, 400, (20, 24, 16)).cumsum(axis=0)).astype(np.int16)
    out = overfit.decode(overfit.encode(src, iterations=5))
    assert out.shape == src.shape and out.dtype == np.int16


def test_nodata_is_excluded_from_the_fit(overfit) -> None:
    yy, xx = np.mgrid[:32, :40]
    src = (20000 + 150 * xx + 90 * yy).astype(np.uint16)[:, :, None]
    src[:10, :12] = 0  # nodata: far outside the data's range
    valid = src[:, :, 0] != 0
    plain = overfit.decode(overfit.encode(src, lmbda=0.05, iterations=STEPS))
    masked = overfit.decode(overfit.encode(src, lmbda=0.05, iterations=STEPS, nodata=0))
    span = float(src[valid].max() - src[valid].min())
    err_plain = psnr(src[valid], plain[valid], span)
    err_masked = psnr(src[valid], masked[valid], span)
    assert err_masked > err_plain


def test_target_search_trials_warm_start(overfit, small_rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.codecs.overfit import encoder
    from recodec.target import codec_candidate, parse_target, search_codecs

    seen: list[bool] = []
    real_fit = encoder.fit

    def spy(*args, **kwargs):
        seen.append(kwargs.get("warm") is not None)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(encoder, "fit", spy)
    cand = codec_candidate(overfit, small_rgb, params={"iterations": 5}, structural=False)
    search_codecs([cand], parse_target("psnr>=5"))
    assert len(seen) >= 2 and seen[0] is False and all(seen[1:])
    assert search_state() is None  # the session ends with the search


def test_encodes_outside_a_search_start_cold(overfit, small_rgb: np.ndarray) -> None:
    with search_session():
        first = overfit.encode(small_rgb, iterations=5)
        assert len(search_state() or {}) == 1
    assert overfit.encode(small_rgb, iterations=5) == overfit.encode(small_rgb, iterations=5)
    assert first == overfit.encode(small_rgb, iterations=5)
