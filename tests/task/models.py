"""Independent TorchScript task models written by the tests (not by recodec), and a helper to save them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn


class BlurThreshold(nn.Module):
    """Segmentation: a fixed 3x3 mean filter, then 3 classes by brightness (dark / mid / bright)."""

    def __init__(self, bands: int = 3, low: float = 0.35, high: float = 0.6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bands, 1, 3, padding=1, padding_mode="replicate", bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / (9 * bands))
        self.low, self.high = low, high

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.conv(x)
        return torch.cat([self.low - m, -(m - self.low) * (m - self.high), m - self.high], dim=1) * 10.0


class MeanClassifier(nn.Module):
    """Classification: class 1 when the tile's mean is above ``level``, else 0."""

    def __init__(self, level: float = 0.5) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3)).unsqueeze(1)
        return torch.cat([self.level - m, m - self.level], dim=1)


class Gradient(nn.Module):
    """Dense: horizontal and vertical differences of the band mean (2 channels, same size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=1, keepdim=True)
        gx = torch.nn.functional.pad(m[:, :, :, 1:] - m[:, :, :, :-1], (0, 1, 0, 0))
        gy = torch.nn.functional.pad(m[:, :, 1:, :] - m[:, :, :-1, :], (0, 0, 0, 1))
        return torch.cat([gx, gy], dim=1) + 1.0


class Raises(nn.Module):
    """A model that fails on every input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] >= 0:
            raise RuntimeError("boom from the test model")
        return x


class HalfSize(nn.Module):
    """A segmentation model returning half-resolution logits (the wrong shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::2, ::2]


def save_model(module: nn.Module, path: Path, **sidecar: Any) -> Path:
    """Script ``module`` into ``path`` and write ``path.json`` with ``sidecar`` (defaults filled)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(module).save(str(path))
    spec = {"kind": "segmentation", "bands": [0, 1, 2], "scale": 1 / 255, "offset": 0.0, "tile": 0, "overlap": 0}
    spec.update(sidecar)
    Path(f"{path}.json").write_text(json.dumps(spec))
    return path
