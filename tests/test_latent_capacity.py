"""benchmarks/latent_capacity.py: the transform-coding bound quoted for the hyperprior's ceiling."""

from __future__ import annotations

import numpy as np

from tests.benchmark_scripts import load_benchmark

CAP = load_benchmark("latent_capacity")


def test_dct_is_orthonormal_and_keeping_everything_is_lossless() -> None:
    d = CAP.dct_matrix()
    assert np.allclose(d @ d.T, np.eye(CAP.BLOCK))
    img = np.random.default_rng(0).integers(0, 256, (48, 32, 3), dtype=np.uint8)
    res = CAP.capacity(img, [768])
    assert res["fixed"][0] > 150 and res["best"][0] > 150


def test_more_coefficients_more_psnr_and_adaptive_beats_fixed() -> None:
    rng = np.random.default_rng(1)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(64, 64, 3)), axis=0), axis=1)
    img = np.clip((smooth - smooth.min()) / np.ptp(smooth) * 255 + rng.normal(0, 4, smooth.shape), 0, 255)
    res = CAP.capacity(img.astype(np.uint8), [24, 96, 384])
    assert res["fixed"] == sorted(res["fixed"]) and res["best"] == sorted(res["best"])
    assert all(b >= f for f, b in zip(res["fixed"], res["best"]))
    assert res["best"][0] < res["best"][-1] - 3
