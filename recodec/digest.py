"""Content hashes recorded in manifests and checked by reconcile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pixel_sha256(array: np.ndarray) -> str:
    """SHA-256 of a decoded pixel array, independent of memory layout and host byte order.

    Hashes ``"<dtype>|<H>x<W>x<S>|"`` followed by the pixels in C order, little-endian, so the
    same pixels always give the same digest and a change of shape or dtype changes it.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, np.newaxis]
    le = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    header = f"{le.dtype.name}|{'x'.join(str(n) for n in arr.shape)}|".encode()
    h = hashlib.sha256(header)
    h.update(np.ascontiguousarray(le).reshape(-1).view(np.uint8))  # the buffer itself: no copy
    return h.hexdigest()
