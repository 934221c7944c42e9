"""The differentiable MS-SSIM training loss agrees with the manifest's MS-SSIM metric."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.codecs.photos import chelsea_crop  # noqa: E402

from recodec.codecs.losses import ms_ssim, scales_for  # noqa: E402
from recodec.metrics import compute_metrics  # noqa: E402


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()[None] / 255.0


@pytest.mark.parametrize("sigma", [3.0, 12.0])
def test_five_scale_loss_matches_the_metric(sigma: float) -> None:
    img = chelsea_crop(0, 0, 192, 192)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, sigma, img.shape), 0, 255).astype(np.uint8)
    expected = compute_metrics(img, noisy).ms_ssim
    assert abs(float(ms_ssim(_t(noisy), _t(img), scales=5)[0]) - expected) < 1e-4


def test_scales_fit_the_crop_and_gradients_flow() -> None:
    assert [scales_for(s) for s in (32, 64, 96, 176)] == [2, 3, 4, 5]
    x = torch.rand(1, 3, 64, 64)
    y = (x + 0.05 * torch.randn_like(x)).requires_grad_()
    (1 - ms_ssim(y, x, scales=scales_for(64))).sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
