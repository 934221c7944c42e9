"""WebP codec: the contract plus libwebp / Pillow traps."""

from __future__ import annotations

import io

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.bandpack import is_band_pack
from recodec.errors import ConfigError
from tests.codecs.contract import CodecContract, make_image


class TestWebpContract(CodecContract):
    codec_name = "webp"
    lossless_params = {"lossless": True}


def test_rgb_is_a_plain_webp_and_gray_comes_back_as_one_band() -> None:
    webp = get_codec("webp")
    assert webp.encode(make_image("uint8", 3))[8:12] == b"WEBP"
    gray = make_image("uint8", 1)
    data = webp.encode(gray, lossless=True)
    assert is_band_pack(data, "webp")
    np.testing.assert_array_equal(webp.decode(data), gray)


def test_trap_webp_has_no_gray_mode() -> None:
    """Pillow writes an L image as RGB WebP: decoding gives 3 bands back."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(make_image("uint8", 1)[:, :, 0]).save(buf, "WEBP", lossless=True)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert np.asarray(im).shape[2] == 3


def test_trap_lossless_rgba_alters_colour_under_transparent_alpha() -> None:
    """libwebp drops RGB under alpha = 0 unless exact=True; recodec never relies on WebP alpha."""
    from PIL import Image

    rgba = make_image("uint8", 4)
    rgba[:, :20, 3] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "WEBP", lossless=True)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert not np.array_equal(np.asarray(im), rgba)  # the trap
    webp = get_codec("webp")
    np.testing.assert_array_equal(webp.decode(webp.encode(rgba, lossless=True)), rgba)


def test_method_is_validated_and_changes_effort() -> None:
    webp, src = get_codec("webp"), make_image("uint8", 3, height=64, width=64)
    with pytest.raises(ConfigError):
        webp.encode(src, method=7)
    assert webp.encode(src, method=0) != webp.encode(src, method=6)


def test_lossless_ignores_quality() -> None:
    webp, src = get_codec("webp"), make_image("uint8", 3)
    assert webp.encode(src, lossless=True, quality=10) == webp.encode(src, lossless=True, quality=90)


def test_tiff_compressionargs() -> None:
    webp = get_codec("webp")
    assert webp.tiff_compressionargs(webp.resolve_params({"lossless": True})) == {
        "level": 100, "lossless": True, "method": 4}
    assert webp.tiff_compressionargs(webp.resolve_params({"quality": 60}))["level"] == 60


def test_trap_lossy_webp_is_always_420() -> None:
    """Alternating red/green columns lose their colour in lossy WebP even at quality 100."""
    src = np.zeros((32, 32, 3), np.uint8)
    src[:, ::2, 0] = 255
    src[:, 1::2, 1] = 255
    webp = get_codec("webp")
    assert np.abs(webp.decode(webp.encode(src, quality=100)).astype(int) - src).max() > 64
    np.testing.assert_array_equal(webp.decode(webp.encode(src, lossless=True)), src)
