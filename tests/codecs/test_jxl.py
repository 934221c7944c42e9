"""JPEG XL codec: the contract, band layouts, lossless JPEG recompression, libjxl traps."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.bandpack import is_band_pack, unpack_bands
from recodec.formats.jpeg import decode_jpeg
from recodec.codecs.jxl import has_jpeg_reconstruction
from recodec.errors import UnsupportedImageError
from tests.codecs.contract import CodecContract, make_image


class TestJxlContract(CodecContract):
    codec_name = "jxl"
    lossless_params = {"lossless": True}


def test_defaults_effort_7_and_lossy_distance_1() -> None:
    params = get_codec("jxl").resolve_params({})
    assert params == {"distance": 1.0, "lossless": False, "effort": 7}


def test_distance_zero_means_lossless() -> None:
    jxl, src = get_codec("jxl"), make_image("uint16", 1)
    np.testing.assert_array_equal(jxl.decode(jxl.encode(src, distance=0)), src)


def test_trap_int16_is_refused_up_front() -> None:
    with pytest.raises(Exception, match="invalid data shape or dtype"):
        imagecodecs.jpegxl_encode(np.zeros((8, 8), np.int16))
    with pytest.raises(UnsupportedImageError):
        get_codec("jxl").encode(np.zeros((8, 8, 1), np.int16))


def test_trap_many_bands_become_animation_frames() -> None:
    """libjxl takes (H, W, 7) as H frames of W x 7 gray; recodec codes bands one by one."""
    src = make_image("uint8", 7)
    assert imagecodecs.jpegxl_decode(imagecodecs.jpegxl_encode(src)).shape == (48, 40, 7)  # frames x ...
    data = get_codec("jxl").encode(src, lossless=True)
    assert is_band_pack(data, "jxl") and len(unpack_bands(data)[1]) == 7
    np.testing.assert_array_equal(get_codec("jxl").decode(data), src)


def test_trap_four_bands_are_not_rgba() -> None:
    """As RGBA, lossy JXL throws away colour under alpha = 0; recodec codes RGB + 1 band."""
    src = make_image("uint8", 4)
    src[:, :, 3] = 0
    raw = imagecodecs.jpegxl_decode(imagecodecs.jpegxl_encode(src, distance=1.0, lossless=False))
    jxl = get_codec("jxl")
    ours = jxl.decode(jxl.encode(src, distance=1.0))
    err_raw = np.abs(raw[:, :, :3].astype(int) - src[:, :, :3]).mean()
    err_ours = np.abs(ours[:, :, :3].astype(int) - src[:, :, :3]).mean()
    assert err_raw > 50 and err_ours < 10
    assert [m["bands"] for m, _ in unpack_bands(jxl.encode(src))[1]] == [3, 1]


def test_effort_changes_output() -> None:
    jxl, src = get_codec("jxl"), make_image("uint8", 3, height=64, width=64)
    assert jxl.encode(src, effort=1) != jxl.encode(src, effort=9)


class TestJpegRecompression:
    """transcode(): JPEG -> JXL with bit-exact JPEG reconstruction."""

    @pytest.fixture
    def jpeg_bytes(self) -> bytes:
        return get_codec("jpeg").encode(make_image("uint8", 3, height=96, width=80), quality=85)

    def test_smaller_and_pixel_identical(self, jpeg_bytes: bytes) -> None:
        jxl = get_codec("jxl")
        data = jxl.transcode(jpeg_bytes, "JPEG", jxl.resolve_params({}))
        assert data is not None and len(data) < len(jpeg_bytes)
        assert has_jpeg_reconstruction(data) and jxl.sniff(data)
        assert imagecodecs.jpegxl_decode_jpeg(data) == jpeg_bytes
        np.testing.assert_array_equal(jxl.decode(data), decode_jpeg(jpeg_bytes))

    def test_trap_libjxl_pixels_differ_from_libjpeg(self, jpeg_bytes: bytes) -> None:
        data = imagecodecs.jpegxl_encode_jpeg(jpeg_bytes)
        assert not np.array_equal(imagecodecs.jpegxl_decode(data), decode_jpeg(jpeg_bytes))

    @pytest.mark.parametrize("options", [{"progressive": True}, {"subsampling": "4:4:4"}])
    def test_progressive_and_444(self, options: dict) -> None:
        src = get_codec("jpeg").encode(make_image("uint8", 3), **options)
        jxl = get_codec("jxl")
        np.testing.assert_array_equal(jxl.decode(jxl.transcode(src, "JPEG", {})), decode_jpeg(src))

    def test_gray_jpeg(self) -> None:
        src = get_codec("jpeg").encode(make_image("uint8", 1))
        jxl = get_codec("jxl")
        out = jxl.decode(jxl.transcode(src, "JPEG", {}))
        np.testing.assert_array_equal(out[:, :, 0], decode_jpeg(src))

    def test_not_a_jpeg_or_broken_gives_none(self, jpeg_bytes: bytes) -> None:
        jxl = get_codec("jxl")
        assert jxl.transcode(jpeg_bytes, "PNG", {}) is None
        assert jxl.transcode(jpeg_bytes[: len(jpeg_bytes) // 2], "JPEG", {}) is None


def test_trap_imagecodecs_defaults_to_effort_5() -> None:
    src = make_image("uint8", 3, height=64, width=64)
    default = imagecodecs.jpegxl_encode(src)
    assert default == imagecodecs.jpegxl_encode(src, effort=5)
    assert get_codec("jxl").encode(src, lossless=True) == imagecodecs.jpegxl_encode(src, lossless=True, effort=7)


def test_smallest_lossy_distance_is_0_01() -> None:
    from recodec.errors import ConfigError

    jxl = get_codec("jxl")
    assert jxl.knob.low == 0.01
    with pytest.raises(ConfigError):
        jxl.resolve_params({"distance": 0.005})
