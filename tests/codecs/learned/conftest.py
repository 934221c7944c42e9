"""Fixtures of the learned-codec tests: the shipped codecs and small real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("constriction")

DEVSET = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "devset"


@pytest.fixture(scope="session")
def hyperprior():
    """The shipped hyperprior codec (weights verified and loaded once)."""
    from recodec.codecs.registry import get_codec

    codec = get_codec("hyperprior")
    codec.load()
    return codec


@pytest.fixture(scope="session")
def factorized():
    """The shipped factorized codec."""
    from recodec.codecs.registry import get_codec

    codec = get_codec("factorized")
    codec.load()
    return codec


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real photo crop whose sizes are not multiples of 64 (falls back to a synthetic image)."""
    path = DEVSET / "photo_chelsea.png"
    if path.exists():
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))[:150, :200].copy()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:150, :200]
    base = np.stack([xx, yy, (xx + yy) // 2], axis=2).astype(np.float64)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
