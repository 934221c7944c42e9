"""The photo crop the learned-codec tests share: the bundled sample (a copy of the devset's photo_chelsea.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Bundled with the repository (samples/README.md gives its provenance), so every
#: checkout runs these tests on the same real photo, with or without ../shared/data.
PHOTO = Path(__file__).resolve().parents[2] / "samples" / "archive" / "photos" / "photo_chelsea.png"


def chelsea_crop(top: int, left: int, height: int, width: int) -> np.ndarray:
    """An RGB crop of photo_chelsea.png."""
    from PIL import Image

    with Image.open(PHOTO) as im:
        return np.asarray(im.convert("RGB"))[top:top + height, left:left + width].copy()
