"""Content kept or refused with a reason: the source reader (frames, orientation, photometric, ICC,
integrity, memory budget).  Hostile files come from :mod:`tests.content_corpus`."""

from __future__ import annotations

import io

import numpy as np
import pytest

from recodec.content import (
    ReadOptions,
    apply_orientation,
    embed_icc,
    exif_orientation,
    is_srgb_profile,
    output_icc,
)
from recodec.errors import (
    CorruptSourceError,
    DecodeError,
    ImageTooLargeError,
    ImplausibleHeaderError,
    MultiFrameError,
    UnsupportedImageError,
    library_message,
)
from recodec.formats.source import read_image
from tests import content_corpus as cc

FIRST = ReadOptions(first_frame_only=True)
LENIENT = ReadOptions(accept_warnings=True)


# -- integrity -------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda: cc.truncated_jpeg(cc.jpeg_bytes(cc.photo(256, 256))),
    lambda: cc.damaged_scan_jpeg(cc.jpeg_bytes(cc.photo(256, 256))),
    lambda: cc.jpeg_bytes(cc.photo())[:-2] + b"\x00\x17\x2a\xff\xd9",  # extraneous bytes before EOI
    lambda: cc.png_bytes(cc.photo()) + b"trailing garbage",
    lambda: cc.damaged_jpeg_tile_tiff(cc.photo(256, 256)),
])
def test_decoder_warnings_fail_unless_accepted(build) -> None:
    data = build()
    with pytest.raises(CorruptSourceError) as err:
        read_image(data)
    assert str(err.value).startswith("corrupt_source: ")
    image = read_image(data, options=LENIENT)
    assert image.warnings and all(isinstance(w, str) and w for w in image.warnings)


def test_clean_jpeg_has_no_warnings_and_same_pixels_as_libjpeg() -> None:
    import imagecodecs

    data = cc.jpeg_bytes(cc.photo(120, 90))
    image = read_image(data)
    assert image.warnings == [] and image.actions == []
    np.testing.assert_array_equal(image.array, imagecodecs.jpeg8_decode(data))


def test_clean_jpeg_tiles_have_no_warnings() -> None:
    assert read_image(cc.tiff_bytes(cc.photo(256, 256), photometric="rgb", compression="jpeg",
                                    tile=(64, 64))).warnings == []


def test_truncated_tiff_strip_is_corrupt() -> None:
    with pytest.raises(CorruptSourceError, match="runs past the end"):
        read_image(cc.truncated_tiff(cc.photo()[:, :, 0]))


@pytest.mark.parametrize("data,what", [
    (cc.jpeg_claiming(8000, 8000), "JPEG"),
    (cc.png_claiming(8000, 8000), "PNG"),
])
def test_implausible_header_is_refused_before_decoding(data: bytes, what: str) -> None:
    assert len(data) < 1000
    with pytest.raises(ImplausibleHeaderError, match=f"{what} header declares 8000 x 8000"):
        read_image(data)


def test_band_count_counts_in_the_memory_budget() -> None:
    data = cc.band_bomb_tiff(1000, 1000, 3000)
    assert len(data) < 4096
    with pytest.raises(ImageTooLargeError, match="3000 band"):
        read_image(data)  # 6 GB of samples: refused from the header, nothing decoded
    small = ReadOptions(max_image_bytes=64 * 96 * 3 - 1)
    with pytest.raises(ImageTooLargeError, match="memory budget"):
        read_image(cc.png_bytes(cc.photo()), options=small)
    assert read_image(cc.png_bytes(cc.photo()), options=ReadOptions(max_image_bytes=64 * 96 * 3)).bands == 3


def test_library_errors_never_have_an_empty_message() -> None:
    class PngError(Exception):
        pass

    assert library_message(PngError("")) == "PngError: the library gave no message (corrupt or truncated stream)"
    assert library_message(PngError("IDAT: CRC error")) == "PngError: IDAT: CRC error"


# -- frames ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["apng", "webp", "tiff"])
def test_multiframe_is_refused_or_first_frame_kept_on_request(kind: str) -> None:
    frames = [cc.photo(seed=1), cc.photo(seed=2), cc.photo(seed=3)]
    data = {"apng": cc.apng_bytes, "webp": cc.animated_webp, "tiff": cc.multipage_tiff}[kind](frames)
    with pytest.raises(MultiFrameError) as err:
        read_image(data)
    assert str(err.value).startswith("multiframe: ") and "3 frames" in str(err.value)
    image = read_image(data, options=FIRST)
    assert image.frames == 3 and image.actions == ["first_frame_of:3"]
    np.testing.assert_array_equal(image.array, frames[0])


def test_overviews_are_not_pages() -> None:
    image = read_image(cc.tiff_with_overview(cc.photo()))
    assert image.frames == 1 and image.actions == []


def test_still_png_with_unrelated_chunks_is_one_frame() -> None:
    assert read_image(cc.png_bytes(cc.photo())).frames == 1


# -- orientation -------------------------------------------------------------------------------

@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(orientation: int) -> None:
    from PIL import Image, ImageOps

    stored = cc.photo(40, 56, seed=orientation)
    data = cc.oriented_png(stored, orientation)
    image = read_image(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(image.array, expected)
    assert image.orientation == orientation
    assert image.actions == ([] if orientation == 1 else [f"orientation_applied:{orientation}"]) + [
        "metadata_dropped:exif"]


def test_jpeg_orientation_is_read_and_applied() -> None:
    stored = cc.photo(48, 64)
    image = read_image(cc.oriented_jpeg(stored, 6))
    assert image.array.shape == (64, 48, 3)
    assert image.actions == ["orientation_applied:6", "metadata_dropped:exif"]
    plain = read_image(cc.jpeg_bytes(stored, subsampling=0, quality=100))
    np.testing.assert_array_equal(image.array, apply_orientation(plain.array, 6))


def test_metadata_no_output_carries_is_named() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "survey 12")
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(cc.photo()).save(buf, "PNG", pnginfo=info)
    assert read_image(buf.getvalue()).actions == ["metadata_dropped:png:tEXt"]
    tif = cc.tiff_bytes(cc.photo(), photometric="rgb", description="scene 7", software="scanner 2")
    assert read_image(tif).actions == ["metadata_dropped:description,software"]


def test_exif_orientation_parser_ignores_garbage() -> None:
    assert exif_orientation(cc.exif_block(3)) == 3
    assert exif_orientation(b"Exif\x00\x00" + cc.exif_block(7)) == 7
    assert exif_orientation(b"II*\x00\xff\xff\xff\xff") == 1
    assert exif_orientation(b"") == 1


# -- photometric -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,bits", [("uint8", 8), ("uint16", 16), ("bool", 1)])
def test_miniswhite_is_inverted_to_what_a_viewer_shows(dtype: str, bits: int) -> None:
    stored = (cc.photo()[:, :, 0] > 128) if dtype == "bool" else cc.photo()[:, :, 0].astype(dtype) * (
        257 if dtype == "uint16" else 1)
    image = read_image(cc.tiff_bytes(stored, photometric="miniswhite"))
    expected = (2**bits - 1) - stored.astype(np.int64)
    np.testing.assert_array_equal(image.array[:, :, 0], expected)
    assert image.actions == ["miniswhite_inverted"] and image.photometric == "miniswhite"


def test_palette_tiff_is_expanded_and_recorded() -> None:
    index = (cc.photo()[:, :, 0] // 64).astype(np.uint8)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[0, 65535, 0, 65535], [0, 0, 65535, 65535], [65535, 0, 0, 65535]])
    image = read_image(cc.tiff_bytes(index, photometric="palette", colormap=cmap))
    assert image.actions == ["palette_expanded"] and image.bands == 3


@pytest.mark.parametrize("data", [
    cc.cmyk_jpeg(cc.photo()),
    cc.tiff_bytes(np.zeros((16, 16, 4), np.uint8), photometric="separated"),
])
def test_cmyk_is_refused_with_its_reason(data: bytes) -> None:
    with pytest.raises(UnsupportedImageError) as err:
        read_image(data)
    assert str(err.value).startswith("cmyk: ")


# -- ICC ---------------------------------------------------------------------------------------

def test_icc_profiles_are_read_from_every_container() -> None:
    from PIL import Image

    icc = cc.wide_gamut_profile()
    assert read_image(cc.jpeg_bytes(cc.photo(), icc_profile=icc)).icc_profile == icc
    buf = io.BytesIO()
    Image.fromarray(cc.photo()).save(buf, "PNG", icc_profile=icc)
    assert read_image(buf.getvalue()).icc_profile == icc
    buf = io.BytesIO()
    Image.fromarray(cc.photo()).save(buf, "WEBP", icc_profile=icc, lossless=True)
    assert read_image(buf.getvalue()).icc_profile == icc
    assert read_image(cc.tiff_bytes(cc.photo(), photometric="rgb", iccprofile=icc)).icc_profile == icc


def test_embedded_icc_reads_back() -> None:
    icc = cc.wide_gamut_profile()
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(cc.photo()).save(buf, "WEBP", lossless=True)
    for payload in (cc.png_bytes(cc.photo()), cc.jpeg_bytes(cc.photo()), buf.getvalue()):
        carried = embed_icc(payload, icc)
        assert output_icc(carried) == (True, icc)
        np.testing.assert_array_equal(read_image(carried).array, read_image(payload).array)
    assert embed_icc(b"\x00\x00\x00\x1cftypavif", icc) is None


def test_srgb_profile_is_recognised() -> None:
    assert is_srgb_profile(cc.srgb_profile())
    assert not is_srgb_profile(cc.wide_gamut_profile())
    assert not is_srgb_profile(b"\x00" * 200)


def test_malformed_inputs_still_fail_as_decode_errors() -> None:
    with pytest.raises(DecodeError):
        read_image(b"\xff\xd8\xff" + b"\x00" * 40)
