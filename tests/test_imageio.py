"""Source reading (allowed formats, limits, bad input) and output containers."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from recodec.codecs import get_codec
from recodec.errors import DecodeError, ImageTooLargeError, MultiFrameError, UnsupportedImageError
from recodec.gdalcompat import NOT_COMMON, PIXELS_DIFFER
from recodec.imageio import (
    GEOTIFF_TAGS,
    Image,
    choose_container,
    decode_output,
    encode_output,
    output_extension,
    read_image,
    sniff_format,
    to_viewable,
)
from tests.codecs.contract import make_image

DATA = Path(__file__).parent / "data"
LOCAL_PNGSUITE = DATA / "pngsuite"
SHARED_PNGSUITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "badinput" / "pngsuite"
DEVSET = Path(__file__).resolve().parents[2] / "shared" / "data" / "devset"

# Real GeoTIFF tag values (Landsat 7 scene, UTM 18N) so the container round trip is realistic.
GEOTAGS = {
    33550: (300.0379266750948, 300.041782729805, 0.0),
    33922: (0.0, 0.0, 0.0, 101985.0, 2826915.0, 0.0),
    34735: (1, 1, 0, 7, 1024, 0, 1, 1, 1025, 0, 1, 1, 1026, 34737, 22, 0, 2049, 34737, 7, 22, 2054, 0, 1,
            9102, 3072, 0, 1, 32618, 3076, 0, 1, 9001),
    34737: "WGS 84 / UTM zone 18N|WGS 84|",
    42112: '<GDALMetadata>\n  <Item name="AREA_OR_POINT">Area</Item>\n</GDALMetadata>\n',
}


def tiff_bytes(array: np.ndarray, *, tags: dict[int, object] | None = None, nodata: str | None = None,
               **kwargs: object) -> bytes:
    """A TIFF of ``array`` written by tifffile with GeoTIFF tags."""
    tags = dict(tags or {})
    if nodata is not None:
        tags[42113] = nodata
    extratags = []
    for code, value in sorted(tags.items()):
        kind = GEOTIFF_TAGS[code]
        extratags.append((code, kind, 0 if kind == 2 else len(value), value, True))
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, extratags=extratags, metadata=None, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with one tiny IDAT: a decompression bomb shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


# -- allowed formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("data,what", [
    (b"%PDF-1.7\n1 0 obj\n", "PDF"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n", "PostScript"),
    (b"\xc5\xd0\xd3\xc6" + b"\x00" * 40, "EPS"),
    (b"GIF89a" + b"\x00" * 20, "GIF"),
    (b"BM" + b"\x00" * 60, "BMP"),
    (b"  <?xml version='1.0'?><svg/>", "XML"),
])
def test_refused_formats_are_named(data: bytes, what: str) -> None:
    with pytest.raises(DecodeError, match=what):
        read_image(data)


def test_unknown_and_empty_input() -> None:
    with pytest.raises(DecodeError, match="unrecognised"):
        read_image(b"\x01\x02\x03\x04" * 10)
    with pytest.raises(DecodeError, match="empty"):
        read_image(b"")


def test_error_messages_name_the_source() -> None:
    with pytest.raises(DecodeError, match="scan_0042.pdf"):
        read_image(b"%PDF-1.4", name="scan_0042.pdf")


def test_ghostscript_is_never_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("Ghostscript was called")

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", boom, raising=False)
    with pytest.raises(DecodeError):
        read_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")


def test_pillow_truncated_flag_stays_off() -> None:
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# -- PNG -----------------------------------------------------------------------------------------

def pngsuite_files(valid: bool) -> list[Path]:
    folders = [LOCAL_PNGSUITE] + ([SHARED_PNGSUITE] if SHARED_PNGSUITE.is_dir() else [])
    found = {p.name: p for folder in folders for p in sorted(folder.glob("*.png"))}
    return [p for name, p in sorted(found.items()) if name.startswith("x") != valid]


@pytest.mark.parametrize("path", pngsuite_files(valid=False), ids=lambda p: p.name)
def test_every_corrupted_pngsuite_file_is_a_decode_error(path: Path) -> None:
    with pytest.raises(DecodeError) as info:
        read_image(path.read_bytes(), name=path.name)
    assert str(info.value).startswith("decode_error: ") and path.name in str(info.value)


def test_all_valid_pngsuite_files_read() -> None:
    files = pngsuite_files(valid=True)
    assert len(files) >= 10
    for path in files:
        image = read_image(path.read_bytes(), name=path.name)
        assert image.array.ndim == 3 and image.format == "PNG", path.name
        assert image.dtype in (np.uint8, np.uint16)


def load(name: str) -> Image:
    return read_image((LOCAL_PNGSUITE / name).read_bytes())


def test_png_colour_types() -> None:
    gray16 = load("basn0g16.png")
    assert gray16.dtype == np.uint16 and gray16.bands == 1 and gray16.bit_depth == 16
    rgb16 = load("basn2c16.png")
    assert rgb16.dtype == np.uint16 and rgb16.bands == 3
    palette = load("basn3p04.png")
    assert palette.dtype == np.uint8 and palette.bands == 3 and palette.bit_depth == 8
    palette_trns = load("tbbn3p08.png")
    assert palette_trns.bands == 4 and palette_trns.alpha_band == 3
    ga16 = load("basi4a16.png")
    assert ga16.bands == 2 and ga16.alpha_band == 1 and ga16.dtype == np.uint16
    rgba = load("basn6a08.png")
    assert rgba.bands == 4 and rgba.alpha_band == 3
    gray_trns = load("tbbn0g04.png")
    assert gray_trns.bands == 2 and gray_trns.alpha_band == 1 and gray_trns.array[:, :, 0].max() <= 15


@pytest.mark.parametrize("name,bits", [("basn0g01.png", 1), ("basn0g02.png", 2), ("basn0g04.png", 4),
                                        ("basi0g02.png", 2)])
def test_low_bit_gray_keeps_stored_values(name: str, bits: int) -> None:
    image = load(name)
    assert image.dtype == np.uint8 and image.bit_depth == bits
    assert image.array.max() == 2**bits - 1 or name == "basn0g04.png"
    assert image.array.max() < 2**bits


def test_interlaced_png_equals_progressive() -> None:
    np.testing.assert_array_equal(load("basi0g02.png").array, load("basn0g02.png").array)


def test_png_bomb_is_refused_before_decoding() -> None:
    data = png_header_only(100_000, 100_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError, match="100000 x 100000"):
            read_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000


def test_pixel_limit_is_configurable() -> None:
    data = get_codec("png").encode(make_image("uint8", 3))
    assert read_image(data, max_pixels=48 * 40).width == 40
    with pytest.raises(ImageTooLargeError):
        read_image(data, max_pixels=48 * 40 - 1)


# -- other formats -------------------------------------------------------------------------------

def test_jpeg_read_and_bomb() -> None:
    src = make_image("uint8", 3)
    data = get_codec("jpeg").encode(src, quality=90)
    image = read_image(data)
    assert (image.format, image.bit_depth, image.array.shape) == ("JPEG", 8, src.shape)
    np.testing.assert_array_equal(image.array, get_codec("jpeg").decode(data))
    sof = data.index(b"\xff\xc0")
    bomb = data[:sof + 5] + struct.pack(">HH", 60000, 60000) + data[sof + 9:]
    with pytest.raises(ImageTooLargeError):
        read_image(bomb)


def test_webp_read_keeps_alpha() -> None:
    from PIL import Image as PILImage

    rgba = make_image("uint8", 4)
    buf = io.BytesIO()
    PILImage.fromarray(rgba).save(buf, "WEBP", lossless=True, exact=True)
    image = read_image(buf.getvalue())
    assert image.format == "WEBP" and image.alpha_band == 3
    np.testing.assert_array_equal(image.array, rgba)
    with pytest.raises(ImageTooLargeError):
        read_image(buf.getvalue(), max_pixels=100)


def test_animated_webp_is_refused() -> None:
    from PIL import Image as PILImage

    frames = [PILImage.fromarray(make_image("uint8", 3, seed=s)) for s in range(2)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(MultiFrameError, match="animated WebP holds 2 frames"):
        read_image(buf.getvalue())


@pytest.mark.parametrize("codecformat", ["JP2", "J2K"])
def test_jpeg2000_read(codecformat: str) -> None:
    import imagecodecs

    src = make_image("uint16", 4, value_range=(0, 4095))
    data = imagecodecs.jpeg2k_encode(src, level=0, reversible=True, codecformat=codecformat, bitspersample=12)
    image = read_image(data)
    assert image.bit_depth == 12 and image.format == "JP2"
    np.testing.assert_array_equal(image.array, src)
    with pytest.raises(ImageTooLargeError):
        read_image(data, max_pixels=100)
    assert sniff_format(data) == codecformat


def test_htj2k_codestream_reads() -> None:
    src = make_image("uint8", 3)
    np.testing.assert_array_equal(read_image(get_codec("htj2k").encode(src, lossless=True)).array, src)


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "tiff", "jp2", "tiff-zstd"])
def test_truncated_sources_are_decode_errors(fmt: str) -> None:
    src = make_image("uint8", 3, height=96, width=96)
    data = {
        "png": lambda: get_codec("png").encode(src),
        "jpeg": lambda: get_codec("jpeg").encode(src),
        "webp": lambda: get_codec("webp").encode(src),
        "tiff": lambda: tiff_bytes(src),
        "jp2": lambda: get_codec("jpeg2000").encode(src),
        "tiff-zstd": lambda: get_codec("zstd-tiff").encode(src),
    }[fmt]()
    for cut in (len(data) // 2, len(data) - 7, len(data) - 1):
        with pytest.raises(DecodeError):
            read_image(data[:cut])


# -- TIFF / GeoTIFF ------------------------------------------------------------------------------

def test_geotiff_tags_and_nodata_are_read() -> None:
    src = make_image("uint16", 3)
    image = read_image(tiff_bytes(src, tags=GEOTAGS, nodata="-9999"))
    assert image.format == "TIFF" and image.is_geotiff and image.nodata == -9999.0
    assert set(image.geotiff_tags) == set(GEOTAGS) | {42113}
    assert tuple(image.geotiff_tags[33922]) == GEOTAGS[33922]
    np.testing.assert_array_equal(image.array, src)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32"])
def test_multiband_dtypes_and_planar_tiff(dtype: str) -> None:
    src = make_image(dtype, 6)
    for planar in ("contig", "separate"):
        data = src if planar == "contig" else np.ascontiguousarray(np.moveaxis(src, -1, 0))
        image = read_image(tiff_bytes(data, photometric="minisblack", planarconfig=planar, tile=(16, 16)))
        assert image.array.shape == src.shape
        np.testing.assert_array_equal(image.array, src)
    assert image.bit_depth == (None if dtype == "float32" else np.dtype(dtype).itemsize * 8)


def test_cog_reads_level_zero_only() -> None:
    src = make_image("uint8", 3, height=64, width=64)
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(src, tile=(16, 16), subifds=1, photometric="rgb", metadata=None)
        tif.write(src[::2, ::2], tile=(16, 16), subfiletype=1, photometric="rgb", metadata=None)
    image = read_image(buf.getvalue())
    np.testing.assert_array_equal(image.array, src)


def test_palette_and_bilevel_tiff() -> None:
    idx = (make_image("uint8", 1) // 64).astype(np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[0, 255, 0, 255], [0, 0, 255, 255], [0, 128, 128, 0]]) * 257
    image = read_image(tiff_bytes(idx[:, :, 0], photometric="palette", colormap=cmap))
    assert image.bands == 3 and image.dtype == np.uint8
    np.testing.assert_array_equal(image.array[:, :, 0], cmap[0, idx[:, :, 0]] // 257)
    bilevel = read_image(tiff_bytes(make_image("bool", 1)[:, :, 0]))
    assert bilevel.dtype == np.uint8 and bilevel.bit_depth == 1 and bilevel.array.max() == 1


def test_tiff_alpha_and_unsupported_dtype() -> None:
    rgba = make_image("uint8", 4)
    assert read_image(tiff_bytes(rgba, photometric="rgb", extrasamples=[2])).alpha_band == 3
    with pytest.raises(UnsupportedImageError):
        read_image(tiff_bytes(np.zeros((8, 8), np.complex64)))


def test_tiff_bomb_is_refused_before_decoding() -> None:
    entries = [(256, 4, 1, 200_000), (257, 4, 1, 200_000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 200_000), (279, 4, 1, 40_000_000_000 % 2**32)]
    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        return struct.pack("<HHI", tag, kind, count) + packed

    ifd = struct.pack("<H", len(entries)) + b"".join(entry(*e) for e in entries) + struct.pack("<I", 0)
    data = b"II*\x00" + struct.pack("<I", 8) + ifd
    with pytest.raises(ImageTooLargeError):
        read_image(data)


# -- outputs -------------------------------------------------------------------------------------

def geo_image(dtype: str = "uint8", bands: int = 3, nodata: float | None = 0.0) -> Image:
    src = make_image(dtype, bands)
    # one page of `bands` samples; a 4th band is an unspecified extra sample (RGB + NIR), not alpha
    return read_image(tiff_bytes(src if bands > 1 else src[:, :, 0], tags=GEOTAGS,
                                 nodata=None if nodata is None else str(int(nodata)),
                                 photometric="rgb" if bands in (3, 4) else "minisblack",
                                 planarconfig="contig" if bands > 1 else None,
                                 extrasamples=(0,) if bands == 4 else None))


@pytest.mark.parametrize("name,dtype,bands,exact", [
    ("zstd-tiff", "uint16", 7, True), ("lerc", "float32", 2, True), ("jpeg2000", "uint16", 4, False),
    ("jxl", "uint8", 4, False), ("jxl", "uint16", 1, False), ("jpeg", "uint8", 3, False),
    ("jpeg", "uint8", 4, False), ("webp", "uint8", 3, False),
])
def test_geotiff_container_keeps_georeferencing(name: str, dtype: str, bands: int, exact: bool) -> None:
    image = geo_image(dtype, bands)
    codec = get_codec(name)
    # JPEG XL / JPEG 2000 inside TIFF need the opt-in: common GDAL builds cannot read them.
    opt_in = codec.capabilities.tiff_compression in {**NOT_COMMON, **PIXELS_DIFFER}
    assert choose_container(image, codec, "auto") == ("raw" if opt_in else "geotiff")
    assert choose_container(image, codec, "auto", any_tiff_compression=opt_in) == "geotiff"
    data = encode_output(image, codec, {}, container="geotiff", any_tiff_compression=opt_in)
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        page = tif.pages.first
        assert page.is_tiled
        assert page.compression.name.lower().startswith(codec.capabilities.tiff_compression)
        for code, expected in GEOTAGS.items():
            value = page.tags[code].value
            if isinstance(expected, str):  # TIFF ASCII values come back without trailing whitespace
                assert value == expected.rstrip()
            else:
                assert tuple(value) == expected
        assert page.tags[42113].value == "0"
    again = read_image(data)
    assert again.nodata == 0.0 and again.geotiff_tags.keys() == image.geotiff_tags.keys()
    out = decode_output(data, codec=codec)
    assert out.shape == image.array.shape and out.dtype == image.dtype
    if exact:
        np.testing.assert_array_equal(out, image.array)


def test_geotiff_container_lossless_jpeg2000_and_lerc_bound() -> None:
    image = geo_image("int16", 3)
    out = decode_output(encode_output(image, "jpeg2000", {"lossless": True}, container="geotiff",
                                       any_tiff_compression=True))
    np.testing.assert_array_equal(out, image.array)
    image = geo_image("float32", 3)
    out = decode_output(encode_output(image, "lerc", {"max_error": 0.01}, container="geotiff"))
    assert np.abs(out.astype(float) - image.array).max() <= 0.01


def test_choose_container_rules() -> None:
    geo = geo_image()
    plain = read_image(get_codec("png").encode(make_image("uint8", 3)))
    assert choose_container(plain, "zstd-tiff", "auto") == "raw"
    assert choose_container(geo, "avif", "auto") == "raw"  # no TIFF compression for AVIF
    assert choose_container(geo, "htj2k", "auto") == "raw"
    assert choose_container(geo, "png", "auto") == "raw"
    assert choose_container(geo, "jpeg2000", "raw") == "raw"
    assert choose_container(plain, "zstd-tiff", "geotiff") == "geotiff"
    gray = geo_image("uint8", 1)
    assert choose_container(gray, "webp", "auto") == "raw"  # WebP-in-TIFF needs 3 or 4 samples
    with pytest.raises(UnsupportedImageError):
        choose_container(geo, "avif", "geotiff")
    with pytest.raises(ValueError):
        choose_container(geo, "jpeg", "zip")


def test_raw_container_and_extensions() -> None:
    image = read_image(get_codec("png").encode(make_image("uint8", 3)))
    for name in ("webp", "avif", "jxl", "jpeg2000", "htj2k"):
        data = encode_output(image, name, {}, container="raw")
        assert decode_output(data).shape == image.array.shape
        assert decode_output(data, codec=get_codec(name)).shape == image.array.shape
    assert output_extension(get_codec("jxl"), "raw") == ".jxl"
    assert output_extension(get_codec("jpeg2000"), "raw") == ".jp2"
    assert output_extension(get_codec("jxl"), "geotiff") == ".tif"


def test_decode_output_rejects_unknown_streams() -> None:
    with pytest.raises(DecodeError):
        decode_output(b"\x00\x01garbage")
    with pytest.raises(DecodeError):
        decode_output(get_codec("zstd-tiff").encode(make_image("uint8", 1))[:100])


def test_real_devset_geotiff_roundtrip() -> None:
    path = DEVSET / "l8_LC81390452014295_B5_uint16.tif"
    if not path.exists():
        pytest.skip("shared devset not present")
    image = read_image(path.read_bytes(), name=path.name)
    assert image.is_geotiff and image.dtype == np.uint16 and image.bands == 1
    data = encode_output(image, "zstd-tiff", {"level": 3}, container="geotiff")
    again = read_image(data)
    np.testing.assert_array_equal(again.array, image.array)
    assert again.geotiff_tags.keys() == image.geotiff_tags.keys()


@pytest.mark.parametrize("dtype,bands,ext", [("uint8", 1, ".png"), ("uint8", 2, ".png"), ("uint8", 3, ".png"),
                                             ("uint8", 4, ".png"), ("uint8", 7, ".tif"), ("uint16", 3, ".tif"),
                                             ("float32", 1, ".tif")])
def test_to_viewable(dtype: str, bands: int, ext: str) -> None:
    src = make_image(dtype, bands)
    data, got = to_viewable(src)
    assert got == ext
    np.testing.assert_array_equal(decode_output(data) if ext == ".tif" else read_image(data).array, src)
