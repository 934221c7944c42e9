"""Shared checks of exact decoders: the same pixels whatever the thread count."""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable

import numpy as np
import torch


def pixel_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's bytes (C order)."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def digests_over_threads(decode: Callable[[], np.ndarray], threads: Iterable[int]) -> set[str]:
    """Pixel digests of ``decode()`` run under each torch thread count (restored afterwards)."""
    before = torch.get_num_threads()
    try:
        digests = set()
        for count in threads:
            torch.set_num_threads(count)
            digests.add(pixel_digest(decode()))
    finally:
        torch.set_num_threads(before)
    return digests
