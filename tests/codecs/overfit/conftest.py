"""Fixtures of the overfit-codec tests: a small textured image and one encoded stream."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("constriction")

#: Few optimisation steps: the tests check behaviour, not rate–distortion.
STEPS = 100


@pytest.fixture(scope="session")
def small_rgb() -> np.ndarray:
    """A 37x53 uint8 RGB image with edges and texture (odd sizes on purpose)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:37, :53].astype(np.float64)
    base = np.stack([4 * xx, 5 * yy, 128 + 80 * np.sin(xx / 4) * np.cos(yy / 5)], axis=2)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def overfit():
    """The registered codec."""
    from recodec.codecs.registry import get_codec

    return get_codec("overfit")


@pytest.fixture(scope="session")
def stream(overfit, small_rgb: np.ndarray) -> bytes:
    """One encoded stream of ``small_rgb``."""
    return overfit.encode(small_rgb, lmbda=0.02, iterations=STEPS)
