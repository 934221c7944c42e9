"""Content hashes recorded in manifests and checked by reconcile."""

from __future__ import annotations

import hashlib

import numpy as np


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


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
