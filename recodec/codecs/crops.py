"""Random training crops shared by the learned codecs' trainers (numpy only, no I/O)."""

from __future__ import annotations

import random

import numpy as np


def random_crops(images: list[np.ndarray], batch: int, crop: int, rng: random.Random) -> np.ndarray:
    """A (B, 3, crop, crop) float32 batch in [0, 1] of random crops with random horizontal flips."""
    out = np.empty((batch, 3, crop, crop), dtype=np.float32)
    for i in range(batch):
        img = images[rng.randrange(len(images))]
        h, w = img.shape[:2]
        if h < crop or w < crop:  # tiny images are tiled by reflection rather than skipped
            img = np.pad(img, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")
            h, w = img.shape[:2]
        top, left = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        patch = img[top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i] = patch.transpose(2, 0, 1) / 255.0
    return out
