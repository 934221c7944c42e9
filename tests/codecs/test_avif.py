"""AVIF codec: the contract plus bit-depth rules and libavif / imagecodecs traps."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.codecs.avif import avif_bitdepth
from recodec.errors import UnsupportedImageError
from tests.codecs.contract import CodecContract, make_image


class TestAvifContract(CodecContract):
    codec_name = "avif"
    ranges = {"uint16": (0, 4095)}  # AVIF holds at most 12 bits
    lossless_params = {"lossless": True}


def test_bit_depth_is_chosen_from_the_data() -> None:
    assert avif_bitdepth(make_image("uint8", 1)) == 8
    assert avif_bitdepth(make_image("uint16", 1, value_range=(0, 1023))) == 10
    assert avif_bitdepth(make_image("uint16", 1, value_range=(0, 4095))) == 12
    assert avif_bitdepth(make_image("uint16", 1, value_range=(0, 1023)), 12) == 12
    with pytest.raises(UnsupportedImageError):
        avif_bitdepth(make_image("uint8", 1), 10)


@pytest.mark.parametrize("top", [1023, 4095])
def test_10_and_12_bit_lossless_roundtrip(top: int) -> None:
    avif, src = get_codec("avif"), make_image("uint16", 3, value_range=(0, top))
    out = avif.decode(avif.encode(src, lossless=True))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, src)


def test_trap_values_above_12_bits_are_refused_not_clipped() -> None:
    src = make_image("uint16", 3, value_range=(0, 5000))
    data = imagecodecs.avif_encode(src, 100, bitspersample=12, pixelformat="444")
    assert imagecodecs.avif_decode(data).max() == 4095  # the trap: silent clipping
    with pytest.raises(UnsupportedImageError, match="12 bits"):
        get_codec("avif").encode(src)
    with pytest.raises(UnsupportedImageError, match="10 bits"):
        get_codec("avif").encode(make_image("uint16", 1, value_range=(0, 2000)), bitdepth=10)


def test_trap_imagecodecs_codes_2d_arrays_losslessly() -> None:
    """A 2-D array is coded lossless whatever the quality; recodec's gray path is really lossy."""
    gray = make_image("uint8", 1, height=64, width=64)
    assert imagecodecs.avif_encode(gray[:, :, 0], 20) == imagecodecs.avif_encode(gray[:, :, 0], 100)
    avif = get_codec("avif")
    lossy, lossless = avif.encode(gray, quality=20), avif.encode(gray, lossless=True)
    assert len(lossy) < len(lossless) / 2
    assert avif.decode(lossy).shape == gray.shape


def test_default_subsampling_is_444() -> None:
    avif = get_codec("avif")
    assert avif.resolve_params({})["subsampling"] == "4:4:4"
    src = make_image("uint8", 3, height=64, width=64)
    err = [np.abs(avif.decode(avif.encode(src, quality=95, subsampling=s)).astype(int) - src).mean()
           for s in ("4:4:4", "4:2:0")]
    assert err[0] <= err[1]


def test_speed_changes_output() -> None:
    avif, src = get_codec("avif"), make_image("uint8", 3, height=64, width=64)
    assert avif.encode(src, speed=10) != avif.encode(src, speed=2)
