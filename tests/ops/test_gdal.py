"""GeoTIFF outputs open in GDAL (the rasterio wheel's) with identical pixels; unreadable compressions need an opt-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.container import choose_container, container_of, decode_output, encode_output
from recodec.errors import UnsupportedImageError
from recodec.formats.source import read_image
from tests.conftest import SAMPLES

rasterio = pytest.importorskip("rasterio")  # the `test` extra; bundles GDAL

GEOTIFFS = sorted(p for p in SAMPLES.rglob("*.tif"))
COMMON = ["jpeg", "webp", "zstd-tiff", "lerc"]


def _gdal_read(payload: bytes) -> tuple[np.ndarray, object]:
    from rasterio.io import MemoryFile

    with MemoryFile(payload) as mem, mem.open() as ds:
        return np.moveaxis(ds.read(), 0, -1), ds.transform


@pytest.mark.parametrize("path", GEOTIFFS, ids=lambda p: p.name)
def test_every_default_geotiff_output_opens_in_gdal_with_identical_pixels(path: Path) -> None:
    image = read_image(path.read_bytes())
    written = 0
    for name in COMMON:
        codec = get_codec(name)
        if choose_container(image, codec, "auto") != "geotiff":
            continue
        payload = encode_output(image, codec, codec.resolve_params({}), container="auto")
        if container_of(payload, "geotiff") != "geotiff":
            continue  # auto fell back to the codec's own format (+ sidecar): a lossy codec moved the mask
        pixels, transform = _gdal_read(payload)
        ours = decode_output(payload, codec=codec)
        assert pixels.shape == ours.shape, name
        assert np.array_equal(pixels, ours), name  # what a GIS user sees is what the manifest describes
        if image.is_geotiff:
            assert not transform.is_identity, name  # georeferencing carried over
        written += 1
    assert written >= 2  # the lossless baseline and at least one lossy codec


@pytest.mark.parametrize("name", ["jxl", "jpeg2000"])
def test_compressions_gdal_lacks_need_the_opt_in(name: str) -> None:
    image = read_image((SAMPLES / "landsat" / "l7_RGB.byte.tif").read_bytes())
    codec = get_codec(name)
    if not codec.available():
        pytest.skip(f"{name} not installed")
    assert choose_container(image, codec, "auto") == "raw"  # own format (+ sidecar), not a GeoTIFF
    with pytest.raises(UnsupportedImageError, match="GDAL"):
        choose_container(image, codec, "geotiff")
    assert choose_container(image, codec, "auto", any_tiff_compression=True) == "geotiff"
    # lossless: a lossy GeoTIFF of this nodata scene would fail mask_changed before GDAL is asked
    payload = encode_output(image, codec, codec.resolve_params({"lossless": True}), container="geotiff",
                            any_tiff_compression=True)
    with pytest.raises(Exception):  # why the gate exists: this GDAL cannot decode it
        _gdal_read(payload)


def _cog_layout_ok(payload: bytes) -> None:
    """The structural rules of GDAL's COG validator, checked on the bytes."""
    import io

    import tifffile

    with tifffile.TiffFile(io.BytesIO(payload)) as tif:
        pages = list(tif.pages)
        assert pages[0].offset == 8  # main IFD right after the header
        ifds = [p.offset for p in pages]
        assert ifds == sorted(ifds) and max(ifds) < min(min(p.dataoffsets) for p in pages)  # IFDs first
        firsts = [min(p.dataoffsets) for p in pages]
        assert firsts == sorted(firsts, reverse=True)  # coarsest overview's tiles first, full resolution last
        assert all(p.is_tiled for p in pages) and all(p.subfiletype == 1 for p in pages[1:])
        for p in pages:
            assert list(p.dataoffsets) == sorted(p.dataoffsets)  # tiles of one level in order


@pytest.mark.parametrize("path", GEOTIFFS, ids=lambda p: p.name)
def test_cog_outputs_validate_and_gdal_reads_their_overviews(path: Path) -> None:
    from rasterio.io import MemoryFile

    from recodec.formats.cog import is_cog, overview_levels

    image = read_image(path.read_bytes())
    codec = get_codec("zstd-tiff")  # lossless: GDAL's overview pixels must equal ours exactly
    payload = encode_output(image, codec, codec.resolve_params({}), container="geotiff", cog=True)
    _cog_layout_ok(payload)
    assert is_cog(payload)
    ours = overview_levels(image.array, 256)
    with MemoryFile(payload) as mem, mem.open() as ds:
        assert ds.overviews(1) == [2 ** (i + 1) for i in range(len(ours))]
        full = np.moveaxis(ds.read(), 0, -1)
        half = np.moveaxis(ds.read(out_shape=(ds.count, *ours[0].shape[:2])), 0, -1)
    assert np.array_equal(full, decode_output(payload, codec=codec))  # page 0 is the image, unchanged
    assert np.array_equal(half, ours[0])


def test_cog_is_the_default_for_cog_sources_only(tmp_path: Path) -> None:
    from recodec.config import RunConfig
    from recodec.formats.cog import is_cog
    from recodec.job import prepare_job
    from recodec.pipeline import process_image

    def out(path: Path, **kw: object) -> bytes:
        job = prepare_job(RunConfig(src=str(SAMPLES), dst=str(tmp_path), codec="zstd-tiff", **kw).validate())
        return process_image(path.read_bytes(), job).encoded.payload

    cog_source, plain_source = SAMPLES / "aerial" / "aerial_cogeo_jpeg.tif", SAMPLES / "landsat" / "l7_RGB.byte.tif"
    assert is_cog(cog_source.read_bytes()) and not is_cog(plain_source.read_bytes())
    assert is_cog(out(cog_source)) and not is_cog(out(plain_source))
    assert is_cog(out(plain_source, cog=True)) and not is_cog(out(cog_source, cog=False))


def test_jpeg_geotiff_needs_the_opt_in_because_gdal_decodes_other_pixels() -> None:
    """GDAL opens JPEG-in-TIFF, but its libjpeg upsamples the YCbCr chroma differently."""
    image = read_image((SAMPLES / "aerial" / "aerial_cogeo_jpeg.tif").read_bytes())
    codec = get_codec("jpeg")
    assert choose_container(image, codec, "auto") == "raw"  # a .jpg and its georeferencing sidecar
    assert choose_container(image, codec, "auto", any_tiff_compression=True) == "geotiff"
    payload = encode_output(image, codec, codec.resolve_params({}), container="geotiff")  # explicit: allowed
    pixels, _ = _gdal_read(payload)
    assert not np.array_equal(pixels, decode_output(payload, codec=codec))  # why auto needs the opt-in
