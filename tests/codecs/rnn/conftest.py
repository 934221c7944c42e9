"""Fixtures of the rnn-codec tests: the shipped codec and a small real photo."""

from __future__ import annotations

import numpy as np
import pytest

from tests.codecs.photos import chelsea_crop

pytest.importorskip("torch")
pytest.importorskip("constriction")


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
    return chelsea_crop(100, 150, 90, 120)
