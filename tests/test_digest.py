"""Tests of recodec.digest."""

import numpy as np

from recodec.digest import pixel_sha256


def test_pixel_sha256_ignores_layout_but_not_shape_or_dtype() -> None:
    a = np.arange(24, dtype=np.uint16).reshape(2, 4, 3)
    assert pixel_sha256(a) == pixel_sha256(np.asfortranarray(a))
    assert pixel_sha256(a) == pixel_sha256(a.astype(">u2"))
    assert pixel_sha256(a) != pixel_sha256(a.reshape(4, 2, 3))
    assert pixel_sha256(a) != pixel_sha256(a.astype(np.int32))
    b = a.copy()
    b[0, 0, 0] ^= 1
    assert pixel_sha256(a) != pixel_sha256(b)
    assert pixel_sha256(a[:, :, 0]) == pixel_sha256(a[:, :, :1])
