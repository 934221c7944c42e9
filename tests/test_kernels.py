"""Compiled metric kernels: same numbers as eager torch, and eager whenever compiling is not possible."""

from __future__ import annotations

import math

import numpy as np
import pytest

import recodec.kernels as kernels
import recodec.metrics as metrics
from recodec.metrics import compute_metrics


def _pair(shape: tuple[int, ...], dtype: type, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = (np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) / 4 * top * 0.8
    ref = np.repeat(base[..., None], shape[2], axis=2) + rng.normal(0, top * 0.02, shape)
    ref = np.clip(ref, 0, top).astype(dtype)
    dec = np.clip(ref.astype(np.float64) + rng.normal(0, top * 0.01, shape), 0, top).astype(dtype)
    return ref, dec


def _fresh_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """New twins, so no state leaks between tests (or from other tests in the process)."""
    for name in ("_SSIM_STRIP", "_POINTWISE_CHUNK", "_DOWN"):
        twin = getattr(metrics, name)
        monkeypatch.setattr(metrics, name, kernels.CompiledTwin(twin.fn, dynamic=twin.dynamic))


@pytest.mark.slow
def test_compiled_kernels_agree_with_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    _fresh_twins(monkeypatch)
    ref, dec = _pair((90, 120, 3), np.uint8)
    ref16, dec16 = _pair((70, 80, 1), np.uint16, seed=1)
    ref16[:8] = 0
    monkeypatch.setenv(kernels.COMPILE_ENV, "0")
    eager = [compute_metrics(ref, dec), compute_metrics(ref16, dec16, nodata=0)]
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    compiled = [compute_metrics(ref, dec), compute_metrics(ref16, dec16, nodata=0)]
    if not metrics._SSIM_STRIP.ready:
        pytest.skip(f"torch.compile unavailable here ({metrics._SSIM_STRIP.failed})")
    assert metrics._POINTWISE_CHUNK.ready
    for e, c in zip(eager, compiled):
        assert c.psnr == e.psnr and c.max_abs_error == e.max_abs_error  # integer-exact sums
        assert c.psnr_per_band == e.psnr_per_band
        assert abs(c.ssim - e.ssim) < 1e-6 and abs(c.ms_ssim - e.ms_ssim) < 1e-6
        assert c.sam is None or abs(c.sam - e.sam) < 1e-6 * max(1.0, e.sam)


def test_failed_compile_stays_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler")

    _fresh_twins(monkeypatch)
    monkeypatch.setattr(torch, "compile", broken)
    ref, dec = _pair((40, 50, 3), np.uint8)
    monkeypatch.setenv(kernels.COMPILE_ENV, "0")
    eager = compute_metrics(ref, dec)
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    again = compute_metrics(ref, dec)
    assert metrics._SSIM_STRIP.failed and not metrics._SSIM_STRIP.ready
    assert again.as_dict() == eager.as_dict()


def test_auto_mode_compiles_only_after_eager_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    twin = kernels.CompiledTwin(lambda a: a + 1)
    monkeypatch.setattr(twin, "_start", lambda key, args: calls.append("start"))
    monkeypatch.setenv(kernels.COMPILE_ENV, "auto")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", math.inf)
    assert twin(1) == 2 and calls == []  # a small job never pays for a compile
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", 0.0)
    twin(1)
    assert calls == ["start"]
    kernels._BUSY.release()  # the stubbed _start did not hand the lock to a thread


def test_off_mode_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    twin = kernels.CompiledTwin(lambda a: a * 2)
    monkeypatch.setenv(kernels.COMPILE_ENV, "off")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", 0.0)
    assert [twin(3) for _ in range(3)] == [6, 6, 6]
    assert not twin.ready and not twin.failed and not kernels._BUSY.locked()


def test_compile_mode_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, mode in (("0", "off"), ("eager", "off"), ("sync", "sync"), ("", "auto"), ("auto", "auto")):
        monkeypatch.setenv(kernels.COMPILE_ENV, value)
        assert kernels.compile_mode() == mode
