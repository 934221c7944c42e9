"""Safe reading of source images (:func:`read_image`).

Allowed formats, recognised by their magic bytes only (never by file name): PNG, JPEG,
WebP, TIFF/BigTIFF (GeoTIFF, COG) and JPEG 2000 (JP2 file or J2K/HTJ2K codestream).
Everything else -- EPS, PostScript, PDF, GIF, BMP, SVG... -- is refused with
:class:`DecodeError` before any decoder sees it (nothing can reach Ghostscript: Pillow's
plugin detection is never used for sources).

The pixel limit (``max_pixels``, default 400 MP) and the memory budget (``max_image_bytes``,
width x height x bands x bytes per sample) are checked against the header before any pixel is
decoded -> :class:`ImageTooLargeError`; so is the plausibility of the pixel count for the file
size (:mod:`recodec.integrity`).  Decoder warnings fail the read (``corrupt_source``) unless
``accept_warnings``.  Content beyond the samples follows :mod:`recodec.content`: multi-frame
files are refused (``multiframe``) unless ``first_frame_only``; EXIF/TIFF orientation is applied;
ICC profiles are read; what the reader did is in :attr:`Image.actions`.  What is read of each
format:

- TIFF: the first IFD, i.e. the full-resolution level of a COG; overviews are skipped, a GDAL
  internal mask is read into ``internal_mask``, further pages make the file multi-frame.  Any
  planar configuration; palette images are expanded to RGB.
  dtypes uint8/int8/uint16/int16/uint32/int32/float32/float64 (1-bit becomes uint8 0/1 with
  ``bit_depth=1``).  GeoTIFF tags 33550, 33922, 34264, 34735, 34736, 34737, 42112 and 42113
  are kept raw in ``geotiff_tags``; GDAL_NODATA (42113) is parsed into ``nodata``; an
  ExtraSamples alpha becomes ``alpha_band``.  MINISWHITE is inverted, CMYK refused (``cmyk``).
- PNG: every colour type and bit depth (libpng, CRCs checked).  Palette -> RGB(A); tRNS ->
  an alpha band; 16-bit stays uint16; 1/2/4-bit gray becomes uint8 holding the *stored*
  sample values (0..2**b - 1) with ``bit_depth=b`` so a metric's peak matches the data.
  sBIT is ignored: PNG samples are always scaled to the full declared depth.
- JPEG: 8-bit baseline/progressive via libjpeg-turbo in strict mode (simplejpeg); CMYK refused.
  A JPEG without its end-of-image marker is truncated.
- WebP: RGB or RGBA; an animation is multi-frame (first frame decoded by Pillow on request).
- JPEG 2000: all components at full resolution (OpenJPEG, which also reads HTJ2K).

Truncated or corrupt input raises :class:`DecodeError`, never another exception.  Pillow is
used only for the first frame of an animated WebP, after sniffing;
``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set.
"""

from __future__ import annotations

import io

import numpy as np

from recodec.content import ReadOptions, check_frames, dropped_metadata, png_info, webp_info
from recodec.errors import DecodeError, ImageTooLargeError, RecodecError, library_message
from recodec.formats.headers import check_png_complete, j2k_header, png_header, webp_header
from recodec.formats.image import DEFAULT_MAX_PIXELS, Image, as_hwc, check_header
from recodec.formats.jpeg import read_jpeg
from recodec.formats.magic import identify, refused_format
from recodec.formats.tiff import read_tiff
from recodec.integrity import check_png_plausible, judge_warnings

#: Source formats, in sniffing order (names as :attr:`Image.format` reports them, J2K read as JP2).
SOURCE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "JP2", "J2K")


def sniff_format(data: bytes) -> str:
    """The allowed format of ``data`` from its magic bytes ("PNG", "JPEG", "WEBP", "TIFF", "JP2", "J2K").

    Raises :class:`DecodeError` for anything else, naming the format when it is recognisable.
    """
    fmt = identify(data, SOURCE_FORMATS)
    if fmt is not None:
        return fmt
    if not data:
        raise DecodeError("empty file")
    what = refused_format(data)
    if what is not None:
        raise DecodeError(f"{what} is not an allowed image format (PNG, JPEG, WebP, TIFF, JPEG 2000)")
    raise DecodeError("unrecognised format (allowed: PNG, JPEG, WebP, TIFF, JPEG 2000)")


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _read_png(data: bytes, options: ReadOptions) -> Image:
    import imagecodecs

    height, width, depth, colour = png_header(data)
    check_header(height, width, 4 if colour == 3 else _PNG_CHANNELS.get(colour, 4), 2 if depth == 16 else 1,
                  options, "PNG")
    check_png_complete(data)  # a truncated file is a decode_error, not an implausible header
    check_png_plausible(data, height, width, _PNG_CHANNELS.get(colour, 1) * depth)
    info = png_info(data)
    first = check_frames(info.frames, options, "APNG")
    warnings = judge_warnings(list(info.warnings), options.accept_warnings, "PNG")
    arr = as_hwc(imagecodecs.png_decode(data))
    bit_depth = 8 if colour == 3 else depth  # palette entries are 8-bit whatever the index depth
    if colour == 0 and depth < 8:
        # libpng scales 1/2/4-bit gray to 0..255 by bit replication; undo it exactly.
        arr = arr.copy()
        arr[:, :, 0] //= 255 // (2**depth - 1)
    alpha = arr.shape[2] - 1 if arr.shape[2] in (2, 4) else None
    image = Image(arr, "PNG", bit_depth=bit_depth, alpha_band=alpha, frames=info.frames,
                  icc_profile=info.icc_profile, photometric="palette" if colour == 3 else None,
                  actions=[a for a in (first, "palette_expanded" if colour == 3 else None) if a], warnings=warnings)
    return image.orient(info.orientation)


def _read_webp(data: bytes, options: ReadOptions) -> Image:
    import imagecodecs

    height, width = webp_header(data)
    check_header(height, width, 4, 1, options, "WebP")
    info = webp_info(data)
    first = check_frames(info.frames, options, "animated WebP")
    warnings = judge_warnings(list(info.warnings), options.accept_warnings, "WebP")
    if info.frames > 1:
        from PIL import Image as PILImage

        with PILImage.open(io.BytesIO(data), formats=["WEBP"]) as im:
            im.seek(0)
            im.load()
            rgba = np.asarray(im.convert("RGBA"))
            # Pillow decodes every animation as RGBA: a fully opaque first frame is kept as RGB
            arr = as_hwc(rgba if (rgba[:, :, 3] < 255).any() else rgba[:, :, :3])
    else:
        arr = as_hwc(imagecodecs.webp_decode(data))
    image = Image(arr, "WEBP", bit_depth=8, alpha_band=3 if arr.shape[2] == 4 else None, frames=info.frames,
                  icc_profile=info.icc_profile, actions=[first] if first else [], warnings=warnings)
    return image.orient(info.orientation)


def _read_j2k(data: bytes, options: ReadOptions) -> Image:
    import imagecodecs

    height, width, components, precision = j2k_header(data)
    check_header(height, width, components, 1 if precision <= 8 else 2 if precision <= 16 else 4, options,
                  "JPEG 2000")
    arr = as_hwc(imagecodecs.jpeg2k_decode(data))
    return Image(arr, "JP2", bit_depth=precision)


_READERS = {"PNG": _read_png, "JPEG": read_jpeg, "WEBP": _read_webp, "TIFF": read_tiff,
            "JP2": _read_j2k, "J2K": _read_j2k}


def read_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "",
               options: ReadOptions | None = None) -> Image:
    """Decode source bytes (allowed formats only) as a viewer shows them, checking limits before decoding.

    ``options`` (limits, ``first_frame_only``, ``accept_warnings``) wins over ``max_pixels``.
    """
    options = options or ReadOptions(max_pixels=max_pixels)
    label = f"{name}: " if name else ""
    data, fmt = bytes(data), "image"
    try:
        fmt = sniff_format(data)
        image = _READERS[fmt](data, options)
    except RecodecError as exc:
        exc.args = (label + str(exc.args[0]),) + exc.args[1:] if exc.args and label else exc.args
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(f"{label}not enough memory to decode: {exc}") from exc
    except Exception as exc:  # any library error is a corrupt/truncated file
        raise DecodeError(f"{label}{fmt} decode failed: {library_message(exc)}") from exc
    if image.array.ndim != 3 or 0 in image.array.shape:
        raise DecodeError(f"{label}decoded to an empty or malformed array {image.array.shape}")
    dropped = dropped_metadata(fmt, data, image.metadata_tags)
    if dropped:  # no output carries them: say so (EXIF, XMP, text chunks...)
        image.actions.append(f"metadata_dropped:{','.join(dropped)}")
    return image
