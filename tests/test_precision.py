"""Training precision: bf16 only where this machine computes it natively."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recodec.precision import native_bf16, resolve_precision  # noqa: E402


def _cpu(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    native_bf16.cache_clear()  # the answer is cached per process


@pytest.fixture(autouse=True)
def _real_cpu_afterwards() -> object:
    """Later tests must see this machine's answer, not a faked one."""
    yield
    native_bf16.cache_clear()


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"),
                         [(False, False, False), (True, False, True), (False, True, True)])
def test_native_bf16_follows_the_cpu_features(monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool,
                                               expected: bool) -> None:
    _cpu(monkeypatch, avx512_bf16, amx)
    assert native_bf16() is expected


@pytest.mark.parametrize(("native", "device", "expected"),
                         [(False, "cpu", "fp32"), (True, "cpu", "bf16"), (False, "cuda", "bf16"), (False, "cuda:1", "bf16")])
def test_auto_picks_bf16_only_where_it_is_fast(monkeypatch: pytest.MonkeyPatch, native: bool, device: str,
                                               expected: str) -> None:
    _cpu(monkeypatch, native, False)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision("fp32", device) == "fp32"  # an explicit choice is kept
    assert resolve_precision("bf16", device) == "bf16"


def test_unknown_precision_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="auto, bf16, fp32"):
        resolve_precision("fp16", "cpu")


def test_overfit_encoder_trains_in_fp32_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from recodec.codecs.overfit import codec as C
    from recodec.codecs.overfit import encoder as E

    seen: list[bool] = []
    real_fit = E.fit

    def spy(p: E.Problem, *args: object, **kwargs: object) -> E.Fitted:
        seen.append(p.bf16)
        return real_fit(p, *args, **kwargs)

    monkeypatch.setattr(E, "fit", spy)
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for native in (False, True):
        _cpu(monkeypatch, native, False)
        C.OverfitCodec().encode(img, lmbda=0.01, iterations=2)
    assert seen == [False, True]
