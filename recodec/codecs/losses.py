"""Differentiable training losses shared by the learned codecs' training loops (torch only).

The *metrics* that the manifest records live in :mod:`recodec.metrics` (fast, not
differentiable); these are their training-time counterparts.
"""

from __future__ import annotations

from typing import Any

from recodec.metrics import MS_SSIM_WEIGHTS


def _gaussian_window(channels: int, device: Any, size: int = 11, sigma: float = 1.5) -> Any:
    """Separable 11-tap Gaussian (sigma 1.5) as a depthwise (C, 1, 1, size) kernel."""
    import torch

    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return (g / g.sum()).view(1, 1, 1, -1).repeat(channels, 1, 1, 1)


def _blur(x: Any, win: Any) -> Any:
    """Valid depthwise separable blur of (B, C, H, W)."""
    import torch.nn.functional as F

    c = x.shape[1]
    return F.conv2d(F.conv2d(x, win, groups=c), win.transpose(2, 3), groups=c)


def scales_for(side: int, most: int = len(MS_SSIM_WEIGHTS)) -> int:
    """The most MS-SSIM scales (up to ``most``) whose coarsest image still fits an 11-px window."""
    scales = 1
    while scales < most and side // 2 ** scales >= 11:
        scales += 1
    return scales


def ms_ssim(a: Any, b: Any, *, scales: int = 4, data_range: float = 1.0) -> Any:
    """Per-image MS-SSIM (B,) of (B, C, H, W) float tensors, Gaussian windows, ``scales`` dyadic scales.

    The standard definition (the first ``scales`` weights, renormalised; contrast-structure at
    every scale, luminance at the coarsest).  Needs a side of at least ``10 * 2**(scales-1) + 1``.
    """
    import torch

    # Why float32 outside autocast: the variances are differences of near-equal moments,
    # which bf16 turns into noise (and NaN gradients).
    with torch.autocast(a.device.type, enabled=False):
        return _ms_ssim(a.float(), b.float(), scales, data_range)


def _ms_ssim(a: Any, b: Any, scales: int, data_range: float) -> Any:
    """:func:`ms_ssim` in the inputs' precision."""
    import torch
    import torch.nn.functional as F

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=a.device)
    weights = weights / weights.sum()
    win = _gaussian_window(a.shape[1], a.device)
    value = torch.ones(a.shape[0], device=a.device)
    for s in range(scales):
        mu_a, mu_b = _blur(a, win), _blur(b, win)
        var_a = _blur(a * a, win) - mu_a ** 2
        var_b = _blur(b * b, win) - mu_b ** 2
        cov = _blur(a * b, win) - mu_a * mu_b
        cs = ((2 * cov + c2) / (var_a + var_b + c2)).mean((1, 2, 3))
        if s == scales - 1:
            lum = ((2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)).mean((1, 2, 3))
            cs = cs * lum
        value = value * cs.clamp_min(1e-6) ** weights[s]
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return value


def box_ms_ssim_loss(a: Any, b: Any, scales: int = 3) -> Any:
    """1 - a cheap MS-SSIM proxy: 7x7 uniform windows, equal scale weights, batch means (the GAN's term).

    Why kept beside :func:`ms_ssim`: the shipped GAN decoder was trained with it.
    """
    import torch.nn.functional as F

    c1, c2, value = 0.01**2, 0.03**2, 1.0
    for s in range(scales):
        mu_a, mu_b = F.avg_pool2d(a, 7, 1), F.avg_pool2d(b, 7, 1)
        var_a = F.avg_pool2d(a * a, 7, 1) - mu_a**2
        var_b = F.avg_pool2d(b * b, 7, 1) - mu_b**2
        cov = F.avg_pool2d(a * b, 7, 1) - mu_a * mu_b
        cs = ((2 * cov + c2) / (var_a + var_b + c2)).mean()
        value = value * cs.clamp_min(1e-4) ** (1 / scales)
        if s == scales - 1:
            lum = ((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)).mean()
            value = value * lum.clamp_min(1e-4) ** (1 / scales)
        a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return 1 - value
