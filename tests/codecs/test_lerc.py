"""LERC codec: the contract and the exact max-error bound."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.errors import UnsupportedImageError
from tests.codecs.contract import CodecContract, make_image


class TestLercContract(CodecContract):
    codec_name = "lerc"
    lossless_params = {"lossless": True}
    lossy_params = {"max_error": 2}


@pytest.mark.parametrize("dtype", ["uint8", "int16", "uint16", "int32", "float32", "float64"])
@pytest.mark.parametrize("max_error", [0.001, 0.37, 1, 2.5, 17])
@pytest.mark.parametrize("zstd", [True, False])
def test_max_error_holds_exactly(dtype: str, max_error: float, zstd: bool) -> None:
    lerc = get_codec("lerc")
    src = make_image(dtype, 3, value_range=(-50, 50) if dtype[0] in "if" else (0, 200))
    dec = lerc.decode(lerc.encode(src, max_error=max_error, zstd=zstd))
    assert dec.dtype == src.dtype
    assert np.abs(dec.astype(np.float64) - src.astype(np.float64)).max() <= max_error


def test_max_error_on_large_float_values() -> None:
    """float32 rounding of the reconstruction must not push an error past the bound."""
    lerc = get_codec("lerc")
    src = make_image("float32", 2, value_range=(1e6, 1.001e6), seed=4)
    for bound in (0.01, 0.0625, 0.5):
        dec = lerc.decode(lerc.encode(src, max_error=bound))
        assert np.abs(dec.astype(np.float64) - src.astype(np.float64)).max() <= bound


def test_integer_errors_below_one_are_lossless() -> None:
    lerc, src = get_codec("lerc"), make_image("uint16", 4)
    np.testing.assert_array_equal(lerc.decode(lerc.encode(src, max_error=0.5)), src)


def test_zstd_wraps_the_lerc_blob() -> None:
    lerc, src = get_codec("lerc"), make_image("uint16", 3, height=96, width=96)
    wrapped, plain = lerc.encode(src, max_error=40, zstd=True), lerc.encode(src, max_error=40, zstd=False)
    assert wrapped[:4] == b"\x28\xb5\x2f\xfd" and plain.startswith(b"Lerc2 ")
    assert len(wrapped) <= len(plain) + 16
    np.testing.assert_array_equal(lerc.decode(wrapped), lerc.decode(plain))


def test_trap_nan_is_lost_without_masks() -> None:
    src = make_image("float32", 3)
    src[3, 4, 1] = np.nan
    assert not np.isnan(imagecodecs.lerc_decode(imagecodecs.lerc_encode(src, level=0.01))).any()  # trap
    dec = get_codec("lerc").decode(get_codec("lerc").encode(src, max_error=0.01))
    assert np.isnan(dec[3, 4, 1]) and np.isnan(dec).sum() == 1
    valid = ~np.isnan(src)
    assert np.abs(dec[valid].astype(float) - src[valid]).max() <= 0.01


def test_infinity_is_refused() -> None:
    src = make_image("float32", 1)
    src[0, 0, 0] = np.inf
    with pytest.raises(UnsupportedImageError):
        get_codec("lerc").encode(src)


def test_knob_direction_and_tiff_args() -> None:
    lerc = get_codec("lerc")
    assert lerc.knob.name == "max_error" and not lerc.knob.higher_is_better and lerc.knob.lossless_value == 0
    assert lerc.tiff_compressionargs(lerc.resolve_params({"max_error": "0.5"})) == {"level": 0.5, "compression": "zstd"}


def test_planar_blobs_cost_no_more_than_interleaved() -> None:
    """recodec always writes planar LERC (unambiguous on decode); the notes measured the same size."""
    src = make_image("uint16", 4, height=96, width=96)
    interleaved = imagecodecs.lerc_encode(src, level=0)
    planar = get_codec("lerc").encode(src, zstd=False)
    assert len(planar) <= len(interleaved) * 1.01
