"""The devset photo crop the learned-codec tests share, with a synthetic stand-in when it is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEVSET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "devset"


def chelsea_crop(top: int, left: int, height: int, width: int) -> np.ndarray:
    """An RGB crop of the devset's photo_chelsea.png, or a noisy gradient of the same shape without it."""
    path = DEVSET / "photo_chelsea.png"
    if path.exists():
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))[top:top + height, left:left + width].copy()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:height, :width]
    base = np.stack([xx, yy, (xx + yy) // 2], axis=2).astype(np.float64)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
