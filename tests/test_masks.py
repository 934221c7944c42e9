"""The nodata/alpha mask is kept exactly by every codec, in every container, or the output is refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile

from recodec.codecs import get_codec
from recodec.errors import ContentNotCarriedError, MaskChangedError
from recodec.georef import Georef, georef_of, pam_xml, parse_pam
from recodec.container import container_of, decode_output, encode_output, icc_handling, mask_spec
from recodec.formats.image import Image
from recodec.formats.source import read_image
from recodec.masks import MaskSpec, is_fixup, mask_changes, mask_sha256, unwrap_fixup, wrap_fixup
from tests import content_corpus as cc

LOSSY = [("jpeg", "uint8", {"quality": 30}), ("webp", "uint8", {"quality": 30}),
         ("avif", "uint8", {"quality": 30}), ("jxl", "uint8", {"distance": 4.0}),
         ("jxl", "uint16", {"distance": 4.0}), ("jpeg2000", "uint16", {"psnr": 35.0}),
         ("htj2k", "uint16", {"psnr": 35.0}), ("lerc", "uint16", {"max_error": 40.0}),
         ("lerc", "uint8", {"max_error": 20.0}), ("factorized", "uint8", {}), ("hyperprior", "uint8", {})]


def _image(dtype: str, bands: int = 3, nodata: float | None = 0, alpha: bool = False) -> Image:
    arr = cc.masked_raster(dtype, bands, nodata=0)
    alpha_band = None
    if alpha:
        top = np.iinfo(arr.dtype).max
        a = np.full(arr.shape[:2] + (1,), top, arr.dtype)
        a[: arr.shape[0] // 4] = 0
        a[arr.shape[0] // 4: arr.shape[0] // 3] = top // 3
        arr, alpha_band = np.concatenate([arr, a], axis=2), bands
    return Image(arr, "TIFF", bit_depth=arr.dtype.itemsize * 8, nodata=nodata, alpha_band=alpha_band)


@pytest.mark.parametrize("name,dtype,params", LOSSY, ids=lambda v: str(v))
def test_lossy_codecs_keep_nodata_exactly(name: str, dtype: str, params: dict) -> None:
    codec = get_codec(name)
    if not codec.available():
        pytest.skip(f"{name} not available")
    image = _image(dtype)
    raw = codec.encode(image.array, **params)
    data = encode_output(image, codec, params, container="raw")
    decoded = decode_output(data, codec=codec)
    assert mask_changes(image.array, decoded, mask_spec(image)) is None
    # the fix-up is there only when the codec alone moved the mask
    assert is_fixup(data) == (mask_changes(image.array, decode_output(raw, codec=codec), mask_spec(image)) is not None)


@pytest.mark.parametrize("name,params", [("jpeg", {"quality": 30}), ("webp", {"quality": 30}),
                                         ("lerc", {"max_error": 20.0}), ("jxl", {"distance": 4.0})])
def test_lossy_codecs_keep_alpha_exactly(name: str, params: dict) -> None:
    codec = get_codec(name)
    image = _image("uint8", nodata=None, alpha=True)
    decoded = decode_output(encode_output(image, codec, params, container="raw"), codec=codec)
    np.testing.assert_array_equal(decoded[:, :, 3], image.array[:, :, 3])


def test_geotiff_cannot_fix_up_so_it_fails_or_falls_back() -> None:
    image = _image("uint8", nodata=None, alpha=True)
    image.geotiff_tags = {33550: (30.0, 30.0, 0.0), 33922: (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0)}
    codec = get_codec("jpeg")
    with pytest.raises(MaskChangedError) as err:
        encode_output(image, codec, {"quality": 30}, container="geotiff")
    assert str(err.value).startswith("mask_changed: ") and "alpha samples changed" in str(err.value)
    data = encode_output(image, codec, {"quality": 30}, container="auto")
    assert container_of(data, "geotiff") == "raw" and is_fixup(data)
    np.testing.assert_array_equal(decode_output(data)[:, :, 3], image.array[:, :, 3])  # codec detected inside


def test_jxl_geotiff_keeps_its_alpha_tag() -> None:
    image = _image("uint8", nodata=None, alpha=True)
    image.geotiff_tags = {33550: (30.0, 30.0, 0.0), 33922: (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0)}
    data = encode_output(image, "jxl", {"lossless": True}, container="geotiff",
                         any_tiff_compression=True)  # the mask is kept
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        assert tuple(int(e) for e in tif.pages.first.extrasamples) == (2,)
    assert read_image(data).alpha_band == 3


def test_fixup_roundtrip_and_corruption() -> None:
    src = cc.masked_raster("uint16", 2)
    spec = MaskSpec(nodata=0)
    inner = get_codec("jpeg2000").encode(src, psnr=30.0)
    data = wrap_fixup(inner, src, spec)
    out = unwrap_fixup(data, lambda b: get_codec("jpeg2000").decode(b))
    assert mask_changes(src, out, spec) is None
    assert mask_sha256(out, spec) == mask_sha256(src, spec)
    from recodec.errors import DecodeError

    with pytest.raises(DecodeError):
        unwrap_fixup(data[:-5], lambda b: get_codec("jpeg2000").decode(b))


def test_nan_nodata_and_valid_samples_next_to_nodata() -> None:
    arr = np.linspace(-1, 1, 64 * 48, dtype=np.float32).reshape(64, 48, 1)
    arr[:10] = np.nan
    spec = MaskSpec(nodata=float("nan"))
    out = unwrap_fixup(wrap_fixup(b"x", arr, spec), lambda _: np.where(np.isnan(arr), 5.0, np.nan).astype(np.float32))
    assert mask_changes(arr, out, spec) is None


# -- ICC in outputs ----------------------------------------------------------------------------

def _photo_with(icc: bytes) -> Image:
    return Image(cc.photo(), "PNG", bit_depth=8, icc_profile=icc)


@pytest.mark.parametrize("name", ["png", "jpeg", "webp"])
def test_icc_is_carried_where_the_format_holds_it(name: str) -> None:
    image = _photo_with(cc.wide_gamut_profile())
    data = encode_output(image, name, {}, container="raw")
    assert icc_handling(image, data) == "carried"
    assert read_image(data).icc_profile == image.icc_profile


def test_icc_the_output_cannot_hold() -> None:
    with pytest.raises(ContentNotCarriedError) as err:
        encode_output(_photo_with(cc.wide_gamut_profile()), "avif", {}, container="raw")
    assert str(err.value).startswith("content_not_carried: ")
    image = _photo_with(cc.srgb_profile())
    assert icc_handling(image, encode_output(image, "avif", {}, container="raw")) == "srgb_implied"


def test_geotiff_container_carries_icc() -> None:
    image = _photo_with(cc.wide_gamut_profile())
    data = encode_output(image, "zstd-tiff", {}, container="geotiff")
    assert read_image(data).icc_profile == image.icc_profile and icc_handling(image, data) == "carried"


# -- georeferencing ----------------------------------------------------------------------------

GEOKEYS_UTM = (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32618)


def test_pam_sidecar_carries_crs_transform_and_nodata() -> None:
    tags = {33550: (30.0, 30.0, 0.0), 33922: (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), 34735: GEOKEYS_UTM}
    georef = georef_of(tags, 0.0)
    assert georef == Georef("EPSG:32618", (500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0), 0.0)
    xml = pam_xml(georef, 3)
    assert parse_pam(xml) == georef and xml.count(b"<NoDataValue>0</NoDataValue>") == 3


def test_pixel_is_point_shifts_half_a_pixel_like_gdal() -> None:
    keys = (1, 1, 0, 2, 1025, 0, 1, 2, 3072, 0, 1, 32618)
    gt = georef_of({33550: (10.0, 10.0, 0.0), 33922: (0.0, 0.0, 0.0, 100.0, 200.0, 0.0), 34735: keys}, None)
    assert gt.geotransform == (95.0, 10.0, 0.0, 205.0, 0.0, -10.0)


def test_user_defined_crs_cannot_go_to_a_sidecar() -> None:
    keys = (1, 1, 0, 1, 3072, 0, 1, 32767)
    georef = georef_of({33550: (1.0, 1.0, 0.0), 33922: (0.0, 0.0, 0.0, 0.0, 0.0, 0.0), 34735: keys}, None)
    with pytest.raises(ContentNotCarriedError, match="user-defined"):
        pam_xml(georef, 1)


def test_gdal_reads_the_sidecar(tmp_path) -> None:
    rasterio = pytest.importorskip("rasterio")
    tags = {33550: (30.0, 30.0, 0.0), 33922: (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), 34735: GEOKEYS_UTM}
    path = tmp_path / "scene.png"
    path.write_bytes(cc.png_bytes(cc.photo()))
    (tmp_path / "scene.png.aux.xml").write_bytes(pam_xml(georef_of(tags, 0.0), 3))
    with rasterio.open(path) as ds:
        assert ds.crs.to_epsg() == 32618 and ds.transform.c == 500000.0 and ds.nodata == 0
