"""JPEG 2000 and HTJ2K codecs: the contract, PSNR knob honesty, OpenJPEG / OpenJPH traps."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from recodec.codecs import detect_codec, get_codec
from recodec.codecs.jpeg2000 import full_scale, measured_psnr
from tests.codecs.contract import CodecContract, make_image


class TestJpeg2000Contract(CodecContract):
    codec_name = "jpeg2000"
    lossless_params = {"lossless": True}


class TestHtj2kContract(CodecContract):
    codec_name = "htj2k"
    lossless_params = {"lossless": True}


def psnr_of(codec_name: str, src: np.ndarray, **params: object) -> float:
    codec = get_codec(codec_name)
    return measured_psnr(src, codec.decode(codec.encode(src, **params)), full_scale(src.dtype))


@pytest.mark.parametrize("target", [35.0, 45.0, 60.0])
@pytest.mark.parametrize("layout", [("uint8", 1), ("uint8", 3), ("uint16", 7), ("int16", 2)])
def test_htj2k_psnr_target_is_met(target: float, layout: tuple[str, int]) -> None:
    src = make_image(*layout, height=64, width=64)
    assert psnr_of("htj2k", src, psnr=target) >= target


def test_htj2k_search_gives_smaller_files_for_lower_targets() -> None:
    htj2k, src = get_codec("htj2k"), make_image("uint16", 3, height=64, width=64)
    sizes = [len(htj2k.encode(src, psnr=t)) for t in (40, 55, 70)]
    assert sizes == sorted(sizes)
    assert sizes[-1] <= len(htj2k.encode(src, lossless=True))


@pytest.mark.parametrize("layout", [("uint8", 1), ("uint16", 7)])
def test_jpeg2000_psnr_lands_near_target_for_gray_and_multiband(layout: tuple[str, int]) -> None:
    src = make_image(*layout, height=64, width=64)
    assert abs(psnr_of("jpeg2000", src, psnr=45) - 45) < 1.5


def test_trap_jpeg2000_rgb8_lands_below_target() -> None:
    """OpenJPEG measures before the colour transform: 8-bit RGB lands dB under the target."""
    src = make_image("uint8", 3, height=64, width=64, seed=3)
    assert psnr_of("jpeg2000", src, psnr=45) < 45


def test_trap_jpeg2000_level_zero_needs_reversible() -> None:
    src = make_image("uint8", 3)
    irreversible = imagecodecs.jpeg2k_decode(imagecodecs.jpeg2k_encode(src, level=0, reversible=False))
    assert not np.array_equal(irreversible, src)
    np.testing.assert_array_equal(get_codec("jpeg2000").decode(get_codec("jpeg2000").encode(src, psnr=0)), src)


def test_trap_openjph_wraps_8bit_lossy_values_openjpeg_clamps() -> None:
    rng = np.random.default_rng(0)
    src = np.clip(rng.normal(250, 10, (48, 40, 3)), 0, 255).astype(np.uint8)
    data = imagecodecs.htj2k_encode(src, level=0.02)
    wrapped = imagecodecs.htj2k_decode(data)
    assert np.abs(wrapped.astype(int) - src).max() > 200  # the trap
    out = get_codec("htj2k").decode(data)
    assert np.abs(out.astype(int) - src).max() < 60


def test_trap_openjph_returns_planar_for_many_bands() -> None:
    src = make_image("uint16", 7)
    data = get_codec("htj2k").encode(src, lossless=True)
    assert imagecodecs.htj2k_decode(data).shape == (7, 48, 40)
    np.testing.assert_array_equal(get_codec("htj2k").decode(data), src)


def test_trap_htj2k_level_is_not_monotonic() -> None:
    """Steps just above the lossless threshold give *bigger* files than lossless."""
    src = make_image("uint8", 1, height=96, width=80)
    lossless = len(imagecodecs.htj2k_encode(src, level=0))
    assert len(imagecodecs.htj2k_encode(src, level=2e-5)) > lossless


def test_thirteen_bands_as_one_image() -> None:
    for name in ("jpeg2000", "htj2k"):
        src = make_image("uint16", 13)
        codec = get_codec(name)
        np.testing.assert_array_equal(codec.decode(codec.encode(src, lossless=True)), src)


def test_sniff_tells_j2k_from_htj2k() -> None:
    src = make_image("uint8", 3)
    j2k_codestream = imagecodecs.jpeg2k_encode(src, level=0, reversible=True, codecformat="J2K")
    assert detect_codec(j2k_codestream).name == "jpeg2000"
    assert detect_codec(get_codec("jpeg2000").encode(src)).name == "jpeg2000"
    assert detect_codec(get_codec("htj2k").encode(src)).name == "htj2k"
    assert get_codec("jpeg2000").decode(j2k_codestream).shape == src.shape


def test_tiff_compressionargs() -> None:
    j2k = get_codec("jpeg2000")
    assert j2k.tiff_compressionargs(j2k.resolve_params({"psnr": "0"})) == {"level": 0, "reversible": True}
    assert j2k.tiff_compressionargs(j2k.resolve_params({"psnr": 42})) == {"level": 42.0, "reversible": False}
    assert get_codec("htj2k").capabilities.tiff_compression is None
