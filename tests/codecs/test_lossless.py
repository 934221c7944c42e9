"""PNG and zstd-TIFF lossless baselines."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs import get_codec
from tests.codecs.contract import CodecContract, make_image


class TestPngContract(CodecContract):
    codec_name = "png"


class TestZstdTiffContract(CodecContract):
    codec_name = "zstd-tiff"


def test_png_keeps_16_bit() -> None:
    png, src = get_codec("png"), make_image("uint16", 3)
    out = png.decode(png.encode(src))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, src)


def test_zstd_tiff_levels_and_any_dtype() -> None:
    zt = get_codec("zstd-tiff")
    src = make_image("float64", 9)
    assert len(zt.encode(src, level=19)) <= len(zt.encode(src, level=1))
    for dtype in ("int8", "uint32", "int64"):
        img = make_image(dtype, 2)
        np.testing.assert_array_equal(zt.decode(zt.encode(img)), img)


def test_zstd_tiff_is_a_standard_tiff() -> None:
    import io

    import tifffile

    src = make_image("uint16", 5)
    with tifffile.TiffFile(io.BytesIO(get_codec("zstd-tiff").encode(src))) as tif:
        page = tif.pages.first
        assert page.compression == 50000 and page.predictor == 2 and page.is_tiled
        assert page.shape == (48, 40, 5)


@pytest.mark.parametrize("shape", [(1000, 1, 1), (5000, 1, 3), (300, 2, 4), (1, 5000, 1)])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_png_encodes_narrow_images(shape: tuple[int, int, int], dtype: str) -> None:
    """imagecodecs sized its buffer from the pixel count: 1-column PNGs over ~200 rows failed."""
    arr = np.random.default_rng(0).integers(0, 255, shape).astype(dtype)
    codec = get_codec("png")
    np.testing.assert_array_equal(codec.decode(codec.encode(arr)), arr)
