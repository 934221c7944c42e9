"""Fixtures of the rnn-codec tests: the shipped codec and a small real photo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("constriction")

DEVSET = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "devset"


@pytest.fixture(scope="session")
def rnn():
    """The shipped rnn codec (weights verified and loaded once)."""
    from recodec.codecs.registry import get_codec

    codec = get_codec("rnn")
    codec.load()
    return codec


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo crop whose sizes are not multiples of 16 (falls back to a synthetic image)."""
    path = DEVSET / "photo_chelsea.png"
    if path.exists():
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))[100:190, 150:270].copy()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:90, :120]
    base = np.stack([xx * 2, yy * 2, (xx + yy)], axis=2).astype(np.float64)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
