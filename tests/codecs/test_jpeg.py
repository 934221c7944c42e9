"""JPEG codec: the contract plus libjpeg-turbo traps."""

from __future__ import annotations

import io

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.bandpack import is_band_pack, unpack_bands
from recodec.formats.jpeg import decode_jpeg, jpeg_info
from recodec.errors import DecodeError
from tests.codecs.contract import CodecContract, make_image


class TestJpegContract(CodecContract):
    codec_name = "jpeg"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_plain_jpeg_for_gray_and_rgb_band_pack_otherwise() -> None:
    jpeg = get_codec("jpeg")
    for bands in (1, 3):
        assert jpeg.encode(make_image("uint8", bands))[:3] == b"\xff\xd8\xff"
    for bands, groups in ((2, [1, 1]), (4, [3, 1]), (7, [1] * 7)):
        data = jpeg.encode(make_image("uint8", bands))
        assert is_band_pack(data, "jpeg")
        assert [m["bands"] for m, _ in unpack_bands(data)[1]] == groups


def test_quality_is_monotonic_and_444_beats_420() -> None:
    jpeg, src = get_codec("jpeg"), make_image("uint8", 3, height=64, width=64)
    sizes = [len(jpeg.encode(src, quality=q)) for q in (20, 50, 80, 95)]
    assert sizes == sorted(sizes)
    p420 = psnr(src, jpeg.decode(jpeg.encode(src, quality=95)))
    p444 = psnr(src, jpeg.decode(jpeg.encode(src, quality=95, subsampling="4:4:4")))
    assert p444 > p420


def test_progressive_decodes_the_same_size() -> None:
    jpeg, src = get_codec("jpeg"), make_image("uint8", 3)
    data = jpeg.encode(src, progressive=True)
    assert b"\xff\xc2" in data and jpeg.decode(data).shape == src.shape


def test_trap_libjpeg_pads_truncated_files_silently() -> None:
    """imagecodecs.jpeg8_decode returns gray padding for a cut file; recodec checks the EOI marker."""
    import imagecodecs

    data = get_codec("jpeg").encode(make_image("uint8", 3, height=96, width=96), quality=90)
    cut = data[: len(data) * 3 // 4]
    assert imagecodecs.jpeg8_decode(cut).shape == (96, 96, 3)  # the trap: no error
    with pytest.raises(DecodeError, match="truncated"):
        decode_jpeg(cut)
    with pytest.raises(DecodeError):
        get_codec("jpeg").decode(data[:-2])  # only EOI missing


def test_decode_matches_pillow_and_pillow_truncation_flag_is_off() -> None:
    from PIL import Image, ImageFile

    data = get_codec("jpeg").encode(make_image("uint8", 3), quality=80)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im), get_codec("jpeg").decode(data))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_jpeg_info_reads_the_frame_header() -> None:
    data = get_codec("jpeg").encode(make_image("uint8", 1, height=30, width=20))
    assert jpeg_info(data) == (30, 20, 1, 8)
    with pytest.raises(DecodeError):
        jpeg_info(b"\xff\xd8\xff\xe0\x00")


def test_tiff_compressionargs_carry_quality() -> None:
    jpeg = get_codec("jpeg")
    assert jpeg.tiff_compressionargs(jpeg.resolve_params({"quality": "70"})) == {"level": 70}
