"""Fixtures of the learned-codec tests: the shipped codecs and small real photos."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codecs.photos import chelsea_crop

pytest.importorskip("torch")
pytest.importorskip("constriction")


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
    """A real photo crop whose sizes are not multiples of 64."""
    return chelsea_crop(0, 0, 150, 200)
