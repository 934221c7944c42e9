"""JPEG-LS codec: the contract, the exact max-error bound on every layout, CharLS's limits."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from recodec.codecs import detect_codec, get_codec
from recodec.errors import DecodeError
from recodec.codecs.jpegls import NEAR_LIMIT
from recodec.formats.bandpack import is_band_pack, unpack_bands
from recodec.formats.magic import is_jpegls
from tests.codecs.contract import CodecContract, make_image

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class TestJpegLsContract(CodecContract):
    codec_name = "jpegls"
    lossless_params = {"lossless": True}
    lossy_params = {"max_error": 2}


def max_err(a: np.ndarray, b: np.ndarray) -> float:
    valid = ~np.isnan(a) if a.dtype.kind == "f" else np.ones(a.shape, bool)
    return float(np.abs(b.astype(np.float64) - a.astype(np.float64))[valid].max())


def roundtrip(src: np.ndarray, **params: object) -> np.ndarray:
    codec = get_codec("jpegls")
    out = codec.decode(codec.encode(src, **params))
    assert out.dtype == src.dtype and out.shape == src.shape
    return out


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int8", "int32", "uint32"])
@pytest.mark.parametrize("bound", [0, 1, 3, 127, 128, 255, 256, 1000])
def test_bound_holds_on_random_integers(dtype: str, bound: int) -> None:
    info = np.iinfo(dtype)
    rng = np.random.default_rng(bound)
    lo, hi = max(int(info.min), -40000), min(int(info.max), 70000)
    src = rng.integers(lo, hi, (33, 29, 3), endpoint=True).astype(dtype)
    src[0, 0, :], src[-1, -1, :] = info.min, info.max  # the range edges: 0 / max / negative minimum
    out = roundtrip(src, max_error=bound)
    assert max_err(src, out) <= bound
    if bound == 0:
        np.testing.assert_array_equal(out, src)


@pytest.mark.parametrize("bound", [0.5, 2.7])
def test_fractional_bounds_on_integers_are_floored(bound: float) -> None:
    src = make_image("uint16", 2)
    assert max_err(src, roundtrip(src, max_error=bound)) <= int(bound)


def test_edges_of_the_range_are_kept_within_the_bound() -> None:
    """Values at 0 and at the dtype max: de-quantization must not wrap or leave the range."""
    for dtype, bound in (("uint16", 300), ("uint16", 5), ("uint8", 200), ("int16", 400)):
        info = np.iinfo(dtype)
        src = np.full((16, 16, 1), info.max, dtype)
        src[::2, :, 0] = info.min
        src[5, 5, 0] = info.max - 1
        out = roundtrip(src, max_error=bound)
        assert max_err(src, out) <= bound


@pytest.mark.parametrize("bound", [1e-4, 0.01, 0.3, 5.0])
def test_float32_is_quantized_to_the_declared_error(bound: float) -> None:
    rng = np.random.default_rng(3)
    src = make_image("float32", 2, value_range=(-300, 900)) + rng.normal(0, 1, (48, 40, 2)).astype(np.float32)
    src[0, 0, 0], src[1, 1, 1] = np.float32(-300.0), np.float32(1e4)
    assert max_err(src, roundtrip(src, max_error=bound)) <= bound


def test_float32_nan_is_kept_and_lossless_is_bit_exact() -> None:
    src = make_image("float32", 3)
    src[2, 3, 1] = np.nan
    out = roundtrip(src, max_error=0.01)
    assert np.isnan(out[2, 3, 1]) and np.isnan(out).sum() == 1 and max_err(src, out) <= 0.01
    exact = roundtrip(src, lossless=True)
    np.testing.assert_array_equal(exact.view(np.uint32), src.view(np.uint32))


def test_float32_bound_below_the_resolution_falls_back_to_lossless() -> None:
    src = make_image("float32", 1, value_range=(1e6, 1.001e6))
    np.testing.assert_array_equal(roundtrip(src, max_error=1e-6), src)


@pytest.mark.parametrize("dtype, top", [("uint8", 50), ("uint8", 255), ("uint16", 20), ("uint16", 4095),
                                        ("uint16", 65535)])
def test_trap_charls_near_limits(dtype: str, top: int) -> None:
    """The NEAR limit depends on the sample type only, not the data's range (measured, CharLS 2.4):
    <= 255 on 16 bits (256 is refused); <= 127 on 8 bits, where 128+ encodes but does not decode."""
    src = np.random.default_rng(top).integers(0, top, (32, 32), endpoint=True).astype(dtype)
    limit = NEAR_LIMIT[dtype]
    out = imagecodecs.jpegls_decode(imagecodecs.jpegls_encode(src, level=limit))
    assert np.abs(out.astype(int) - src).max() <= limit
    with pytest.raises(Exception):
        imagecodecs.jpegls_decode(imagecodecs.jpegls_encode(src, level=limit + 1))


def test_trap_charls_interleaves_only_three_or_four_bands() -> None:
    with pytest.raises(Exception):
        imagecodecs.jpegls_encode(make_image("uint16", 2))
    assert imagecodecs.jpegls_decode(imagecodecs.jpegls_encode(make_image("uint16", 4))).shape == (48, 40, 4)


def test_truncated_streams_are_refused_before_charls_sees_them() -> None:
    """CharLS needs ~30 s to reject a stream without its EOI marker (it rejects one with EOI at once)."""
    data = get_codec("jpegls").encode(make_image("uint8", 3))
    assert is_jpegls(data) and data[-2:] == b"\xff\xd9"
    with pytest.raises(DecodeError, match="truncated"):
        get_codec("jpegls").decode(data[: len(data) // 2])
    with pytest.raises(DecodeError):
        get_codec("jpegls").decode(data[: len(data) // 2] + b"\xff\xd9")


def test_trap_int16_is_refused_by_charls() -> None:
    with pytest.raises(Exception):
        imagecodecs.jpegls_encode(make_image("int16", 1))


def test_bare_stream_when_charls_can_hold_it_band_pack_otherwise() -> None:
    jpegls = get_codec("jpegls")
    for bands in (1, 3):
        data = jpegls.encode(make_image("uint16", bands), max_error=4, interleave="interleaved")
        assert is_jpegls(data) and imagecodecs.jpegls_decode(data).shape[:2] == (48, 40)
    for src, bound in ((make_image("int16", 1), 4), (make_image("uint16", 1), 300), (make_image("uint8", 2), 0)):
        assert is_band_pack(jpegls.encode(src, max_error=bound), "jpegls")


@pytest.mark.parametrize("bands", [1, 3])
def test_uint16_data_below_256_decodes_to_uint16(bands: int) -> None:
    """Such samples are coded on 8 bits; the stream must still decode to the source dtype."""
    src = make_image("uint16", bands, value_range=(0, 200))
    for bound in (0, 3):
        out = roundtrip(src, max_error=bound)
        assert max_err(src, out) <= bound


def test_interleave_auto_keeps_the_smaller() -> None:
    jpegls, src = get_codec("jpegls"), make_image("uint16", 3, height=96, width=96)
    sizes = {mode: len(jpegls.encode(src, max_error=3, interleave=mode)) for mode in ("separate", "interleaved")}
    assert len(jpegls.encode(src, max_error=3)) == min(sizes.values())


def test_large_bound_is_prequantized_with_step_2e_plus_1() -> None:
    src = make_image("uint16", 1, height=64, width=64)
    header, parts = unpack_bands(get_codec("jpegls").encode(src, max_error=400))
    steps = {tf["step"] for meta, _ in parts for tf in meta["tf"]}
    assert steps <= {801, 2 * ((400 - 1) // 3) + 1} and header["codec"] == "jpegls"


def test_jpeg_does_not_claim_jpegls_streams() -> None:
    data = get_codec("jpegls").encode(make_image("uint8", 3))
    assert detect_codec(data).name == "jpegls"
    assert not get_codec("jpeg").sniff(data)
    assert get_codec("jpeg").sniff(get_codec("jpeg").encode(make_image("uint8", 3)))


REAL = [("satellite-train/l8_cloudy_B5.tif", 0), ("satellite-train/riotiler_cog_int16.tif", 0),
        ("devset/l8_LC80200392015216_B1-B7_7band_uint16.tif", 0)]


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, _ in REAL])
def test_bound_holds_on_real_scenes(name: str) -> None:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    from recodec.imageio import read_image

    image = read_image(path.read_bytes())
    src = image.array[:384, :384]
    span = float(src.max()) - float(src.min())
    for fraction in (0.001, 0.01, 0.05):
        bound = max(1, int(fraction * span))
        out = roundtrip(src, max_error=bound)
        assert max_err(src, out) <= bound


@pytest.mark.parametrize("codec_name", ["jpegls", "residual"])
@pytest.mark.parametrize("dtype, nodata", [("int16", -32768.0), ("uint16", 0.0), ("uint16", 65535.0),
                                           ("int16", 77.0)])
def test_nodata_comes_back_exactly(codec_name: str, dtype: str, nodata: float) -> None:
    src = make_image(dtype, 2, value_range=(50, 3000))
    src[:10, :7, 0] = nodata
    src[20:25, :, 1] = nodata
    codec = get_codec(codec_name)
    for bound in (0, 9, 400):
        out = codec.decode(codec.encode(src, max_error=bound, nodata=nodata))
        np.testing.assert_array_equal(out == nodata, src == nodata)
        assert max_err(src, out) <= bound


def test_float_nodata_and_nan_both_reserved() -> None:
    src = make_image("float32", 1, value_range=(0, 10))
    src[0, :5, 0], src[1, :5, 0] = np.nan, -9999.0
    out = roundtrip(src, max_error=0.05, nodata=-9999.0)
    assert np.isnan(out[0, :5, 0]).all() and (out[1, :5, 0] == -9999.0).all()
    assert np.isnan(out).sum() == 5 and max_err(src, out) <= 0.05
