"""High-frequency energy ratio: how much band-pass detail a decoder returns, per band.

A blurry (MSE-optimal) decoder returns too little high-frequency energy; a generative one
can return about as much as the original, invented or not.  Per band ``k`` of a
difference-of-Gaussians pyramid on luma (BT.601 weights, no resampling)::

    band_k(img) = G(sigma_k) * Y - G(sigma_{k+1}) * Y,   sigma = 0, 1, 2, 4 px
    ratio_k     = sum(band_k(decoded)^2) / sum(band_k(original)^2)

``ratio_k`` near 1: as much detail as the original in that band (not necessarily the same
detail); below 1: blurred; above 1: added noise or ringing.  Band 0 (sigma 0-1 px) is the
finest.  The same function is the metric (numpy in, floats out) and a differentiable loss
term of the GAN training (torch in, tensor out).
"""

from __future__ import annotations

import math
from typing import Any

#: DoG scales (px); band k lies between SIGMAS[k] and SIGMAS[k+1].
SIGMAS = (0.0, 1.0, 2.0, 4.0)
BAND_NAMES = ("fine", "mid", "coarse")


def _blur(y: Any, sigma: float, pad: str = "reflect") -> Any:
    """Separable Gaussian blur (truncated at 3 sigma, ``pad`` padding) of each channel of (B, C, H, W)."""
    import torch
    import torch.nn.functional as F

    if sigma == 0:
        return y
    r = max(1, math.ceil(3 * sigma))
    x = torch.arange(-r, r + 1, dtype=y.dtype, device=y.device)
    k = torch.exp(-(x * x) / (2 * sigma * sigma))
    k = k / k.sum()
    b, c, h, w = y.shape
    y = y.reshape(b * c, 1, h, w)  # every channel through the same one-channel kernel
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode=pad), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode=pad), k.view(1, 1, -1, 1))
    return y.reshape(b, c, h, w)


def luma(img: Any) -> Any:
    """BT.601 luma (B, 1, H, W) of (B, 3, H, W) RGB, any scale."""
    import torch

    w = torch.tensor([0.299, 0.587, 0.114], dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(1, keepdim=True)


def dog_bands(y: Any, pad: str = "reflect") -> tuple[list[Any], Any]:
    """(band-pass images finest first, the low-pass rest) of each channel of (B, C, H, W).

    The bands and the rest sum back to ``y``.
    """
    blurred = [_blur(y, s, pad) for s in SIGMAS]
    return [blurred[k] - blurred[k + 1] for k in range(len(SIGMAS) - 1)], blurred[-1]


def band_pass(img: Any) -> list[Any]:
    """The band-pass images of luma, finest first: one (B, 1, H, W) tensor per band of (B, 3, H, W) RGB."""
    return dog_bands(luma(img))[0]


def band_energies(img: Any, tile: int | None = None, power: int = 2) -> Any:
    """Per-band mean squared band-pass of (B, 3, H, W) RGB (any scale): tensor (B, bands).

    With ``tile``, the mean over each ``tile`` x ``tile`` block instead (a partial edge block is
    dropped): tensor (B, bands, H // tile, W // tile).  Other ``power`` values give the mean of
    ``|band-pass| ** power``; 1, the mean absolute band-pass (with the energy, it tells dense
    texture from sparse specks).
    """
    import torch
    import torch.nn.functional as F

    maps = [b ** 2 if power == 2 else b.abs() ** power for b in band_pass(img)]
    if tile is None:
        return torch.stack([m.mean((1, 2, 3)) for m in maps], 1)
    return torch.cat([F.avg_pool2d(m, tile) for m in maps], 1)


def rgb_tensor(a: Any) -> Any:
    """(H, W), (H, W, 1) or (H, W, >=3) array -> (1, 3, H, W) float64 tensor, same scale (gray replicated)."""
    import numpy as np
    import torch

    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(arr[:, :, :3].transpose(2, 0, 1)))[None]


def hf_energy_ratio(original: Any, decoded: Any) -> dict[str, float]:
    """``{band: ratio}`` of decoded over original band-pass energy for two (H, W, 3) uint8 arrays."""
    import torch

    with torch.no_grad():
        e_orig = band_energies(rgb_tensor(original))[0]
        e_dec = band_energies(rgb_tensor(decoded))[0]
    return {name: float(d / o) if o > 0 else float("nan")
            for name, d, o in zip(BAND_NAMES, e_dec.tolist(), e_orig.tolist())}
