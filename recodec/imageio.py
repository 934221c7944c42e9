"""Image I/O: safe reading of source images and writing/reading of recodec outputs.

Reading (:func:`read_image`)
    Allowed formats, recognised by their magic bytes only (never by file name): PNG, JPEG,
    WebP, TIFF/BigTIFF (GeoTIFF, COG) and JPEG 2000 (JP2 file or J2K/HTJ2K codestream).
    Everything else -- EPS, PostScript, PDF, GIF, BMP, SVG... -- is refused with
    :class:`DecodeError` before any decoder sees it (nothing can reach Ghostscript: Pillow's
    plugin detection is never used for sources).

    The pixel limit (``max_pixels``, default 400 MP = width x height, whatever the band count)
    is checked against the header before any pixel is decoded -> :class:`ImageTooLargeError`.
    A source is decoded whole into memory (H x W x S x itemsize bytes; 400 MP of 4-band uint16
    is 3.2 GB).  What is read of each format:

    - TIFF: the first IFD only, i.e. the full-resolution level of a COG; overviews, masks and
      further pages are ignored.  Any planar configuration; palette images are expanded to RGB.
      dtypes uint8/int8/uint16/int16/uint32/int32/float32/float64 (1-bit becomes uint8 0/1 with
      ``bit_depth=1``).  GeoTIFF tags 33550, 33922, 34264, 34735, 34736, 34737, 42112 and 42113
      are kept raw in ``geotiff_tags``; GDAL_NODATA (42113) is parsed into ``nodata``; an
      ExtraSamples alpha becomes ``alpha_band``.  MINISWHITE and CMYK samples are kept as stored.
    - PNG: every colour type and bit depth (libpng, CRCs checked).  Palette -> RGB(A); tRNS ->
      an alpha band; 16-bit stays uint16; 1/2/4-bit gray becomes uint8 holding the *stored*
      sample values (0..2**b - 1) with ``bit_depth=b`` so a metric's peak matches the data.
      sBIT is ignored: PNG samples are always scaled to the full declared depth.
    - JPEG: 8-bit baseline/progressive via libjpeg-turbo; EXIF orientation is not applied
      (pixels are archived as stored).  A JPEG without its end-of-image marker is truncated.
    - WebP: still images only (animated WebP is refused); RGB or RGBA.
    - JPEG 2000: all components at full resolution (OpenJPEG, which also reads HTJ2K).

    Truncated or corrupt input raises :class:`DecodeError`, never another exception.  Pillow is
    not used for reading; ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set.

Writing (:func:`encode_output`) is either the codec's own ``raw`` stream or a tiled ``geotiff``
(256 x 256 tiles, the codec's TIFF compression, georeferencing tags and nodata carried over).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recodec.codecs.base import Codec, as_hwc
from recodec.codecs.jpeg import decode_jpeg, jpeg_info
from recodec.codecs.lossless import PNG_SIGNATURE, check_png_complete, is_tiff, tiff_page_hwc, write_tiff
from recodec.errors import CodecError, DecodeError, ImageTooLargeError, RecodecError, UnsupportedImageError

DEFAULT_MAX_PIXELS = 400_000_000  # checked against the header before any pixel is decoded

#: GeoTIFF / GDAL tags carried from a source TIFF to a GeoTIFF output, with their TIFF data type.
GEOTIFF_TAGS: dict[int, int] = {
    33550: 12,  # ModelPixelScaleTag, DOUBLE
    33922: 12,  # ModelTiepointTag, DOUBLE
    34264: 12,  # ModelTransformationTag, DOUBLE
    34735: 3,   # GeoKeyDirectoryTag, SHORT
    34736: 12,  # GeoDoubleParamsTag, DOUBLE
    34737: 2,   # GeoAsciiParamsTag, ASCII
    42112: 2,   # GDAL_METADATA, ASCII (XML)
    42113: 2,   # GDAL_NODATA, ASCII
}
CONTAINERS = ("auto", "raw", "geotiff")
SOURCE_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"})

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
# Band counts a TIFF tile codec can hold interleaved; other counts go planar (one plane per
# band), or cannot be stored at all (WebP has no gray).
_TIFF_CONTIG_BANDS: dict[str, frozenset[int]] = {
    "jpeg": frozenset({1, 3}),
    "jpegxl": frozenset({1, 3}),
    "webp": frozenset({3, 4}),
}
_TIFF_NO_PLANAR = frozenset({"webp"})
# Recognisable formats that are refused, named in the error so an operator knows what it was.
_REFUSED = (
    (b"%PDF", "PDF"), (b"%!PS", "PostScript/EPS"), (b"\xc5\xd0\xd3\xc6", "EPS (DOS binary)"),
    (b"GIF8", "GIF"), (b"BM", "BMP"), (b"<?xml", "XML/SVG"), (b"<svg", "SVG"), (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "Photoshop PSD"), (b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "gzip"),
)


@dataclass
class Image:
    """A decoded source image and what recodec must carry over to its output."""

    array: np.ndarray                 # always (H, W, S)
    format: str                       # "PNG", "JPEG", "TIFF", "WEBP", "JP2"
    bit_depth: int | None = None      # declared bits per integer sample (PNG/TIFF/J2K header), else None
    nodata: float | None = None       # GDAL nodata value, if any
    alpha_band: int | None = None     # index of an alpha band, if any
    geotiff_tags: dict[int, Any] = field(default_factory=dict)  # GeoTIFF tag code -> value

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.array.shape[1])

    @property
    def bands(self) -> int:
        """Samples per pixel."""
        return int(self.array.shape[2])

    @property
    def dtype(self) -> np.dtype:
        """Sample dtype."""
        return self.array.dtype

    @property
    def is_geotiff(self) -> bool:
        """True for a TIFF source carrying georeferencing tags."""
        return self.format == "TIFF" and any(code in self.geotiff_tags for code in (33550, 33922, 34264, 34735))


# -- format sniffing and header sizes -----------------------------------------------------------

def sniff_format(data: bytes) -> str:
    """The allowed format of ``data`` from its magic bytes ("PNG", "JPEG", "WEBP", "TIFF", "JP2", "J2K").

    Raises :class:`DecodeError` for anything else, naming the format when it is recognisable.
    """
    if data[:8] == PNG_SIGNATURE:
        return "PNG"
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if is_tiff(data):
        return "TIFF"
    if data[:12] == _JP2_SIGNATURE:
        return "JP2"
    if data[:4] == _J2K_SOC_SIZ:
        return "J2K"
    if not data:
        raise DecodeError("empty file")
    head = data[:64].lstrip()
    for magic, what in _REFUSED:
        if data.startswith(magic) or head.startswith(magic):
            raise DecodeError(f"{what} is not an allowed image format (PNG, JPEG, WebP, TIFF, JPEG 2000)")
    raise DecodeError("unrecognised format (allowed: PNG, JPEG, WebP, TIFF, JPEG 2000)")


def _check_pixels(height: int, width: int, max_pixels: int, what: str) -> None:
    if height <= 0 or width <= 0:
        raise DecodeError(f"{what} header declares an empty image ({width} x {height})")
    if height * width > max_pixels:
        raise ImageTooLargeError(
            f"{what} header declares {width} x {height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,}"
        )


def _png_header(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, bit depth, colour type) from the IHDR chunk."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise DecodeError("PNG is truncated or has no IHDR chunk first")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return height, width, data[24], data[25]


def _webp_header(data: bytes) -> tuple[int, int]:
    """(height, width) of a WebP from its first chunk; animated files are refused."""
    if len(data) < 30:
        raise DecodeError("WebP is truncated")
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise DecodeError("corrupt WebP (bad VP8 start code)")
        return int.from_bytes(data[28:30], "little") & 0x3FFF, int.from_bytes(data[26:28], "little") & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise DecodeError("corrupt WebP (bad VP8L signature)")
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        if data[20] & 0x02:
            raise DecodeError("animated WebP is not supported")
        return int.from_bytes(data[27:30], "little") + 1, int.from_bytes(data[24:27], "little") + 1
    raise DecodeError(f"corrupt WebP (unknown first chunk {chunk!r})")


def _j2k_codestream(data: bytes) -> bytes:
    """The J2K codestream of a JP2 file (its jp2c box) or of a bare codestream."""
    if data[:4] == _J2K_SOC_SIZ:
        return data
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        if kind == b"jp2c":
            return data[pos + header:pos + size]
        pos += size
    raise DecodeError("JP2 file has no (complete) codestream box")


def _j2k_header(data: bytes) -> tuple[int, int, int, int]:
    """(height, width, components, precision of component 0) from the SIZ marker."""
    cs = _j2k_codestream(data)
    if cs[:4] != _J2K_SOC_SIZ or len(cs) < 45:
        raise DecodeError("JPEG 2000 codestream is truncated or has no SIZ marker")
    x, y, x0, y0 = (int.from_bytes(cs[o:o + 4], "big") for o in (8, 12, 16, 20))
    components = int.from_bytes(cs[40:42], "big")
    return y - y0, x - x0, components, (cs[42] & 0x7F) + 1


# -- readers per format -------------------------------------------------------------------------

def _read_png(data: bytes, max_pixels: int) -> Image:
    import imagecodecs

    height, width, depth, colour = _png_header(data)
    _check_pixels(height, width, max_pixels, "PNG")
    check_png_complete(data)
    arr = as_hwc(imagecodecs.png_decode(data))
    bit_depth = 8 if colour == 3 else depth  # palette entries are 8-bit whatever the index depth
    if colour == 0 and depth < 8:
        # libpng scales 1/2/4-bit gray to 0..255 by bit replication; undo it exactly.
        arr = arr.copy()
        arr[:, :, 0] //= 255 // (2**depth - 1)
    alpha = arr.shape[2] - 1 if arr.shape[2] in (2, 4) else None
    return Image(arr, "PNG", bit_depth=bit_depth, alpha_band=alpha)


def _read_jpeg(data: bytes, max_pixels: int) -> Image:
    height, width, _, _ = jpeg_info(data)
    _check_pixels(height, width, max_pixels, "JPEG")
    return Image(as_hwc(decode_jpeg(data)), "JPEG", bit_depth=8)


def _read_webp(data: bytes, max_pixels: int) -> Image:
    import imagecodecs

    height, width = _webp_header(data)
    _check_pixels(height, width, max_pixels, "WebP")
    arr = as_hwc(imagecodecs.webp_decode(data))
    return Image(arr, "WEBP", bit_depth=8, alpha_band=3 if arr.shape[2] == 4 else None)


def _read_j2k(data: bytes, max_pixels: int) -> Image:
    import imagecodecs

    height, width, _, precision = _j2k_header(data)
    _check_pixels(height, width, max_pixels, "JPEG 2000")
    arr = as_hwc(imagecodecs.jpeg2k_decode(data))
    return Image(arr, "JP2", bit_depth=precision)


def _parse_nodata(value: Any) -> float | None:
    try:
        return float(str(value).strip().strip("\x00"))
    except ValueError:
        return None


def _read_tiff(data: bytes, max_pixels: int) -> Image:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise DecodeError("TIFF has no image")
        page = tif.pages.first
        _check_pixels(int(page.imagelength), int(page.imagewidth), max_pixels, "TIFF")
        if page.imagedepth > 1:
            raise DecodeError("volumetric (SGI ImageDepth) TIFF is not supported")
        arr = tiff_page_hwc(page)
        bit_depth: int | None = int(page.bitspersample) if arr.dtype.kind in "biu" else None
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
            cmap = np.asarray(page.colormap)
            if not (cmap % 257).any():  # 8-bit palette stored as 16-bit TIFF colormap
                cmap = (cmap // 257).astype(np.uint8)
            arr = np.moveaxis(cmap[:, arr[:, :, 0]], 0, -1)
            bit_depth = 8 if cmap.dtype == np.uint8 else 16
        if arr.dtype.name not in SOURCE_DTYPES:
            raise UnsupportedImageError(f"TIFF sample type {arr.dtype.name} is not supported")
        tags = {code: page.tags[code].value for code in GEOTIFF_TAGS if code in page.tags}
        extras = tuple(int(e) for e in (page.extrasamples or ()))
        alpha = None
        for i, kind in enumerate(extras):
            if kind in (1, 2):  # associated / unassociated alpha
                alpha = arr.shape[2] - len(extras) + i
                break
    nodata = _parse_nodata(tags[42113]) if 42113 in tags else None
    return Image(np.ascontiguousarray(arr), "TIFF", bit_depth=bit_depth, nodata=nodata, alpha_band=alpha,
                 geotiff_tags=tags)


_READERS = {"PNG": _read_png, "JPEG": _read_jpeg, "WEBP": _read_webp, "TIFF": _read_tiff,
            "JP2": _read_j2k, "J2K": _read_j2k}


def read_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "") -> Image:
    """Decode source bytes (allowed formats only), checking the pixel limit before decoding."""
    label = f"{name}: " if name else ""
    data, fmt = bytes(data), "image"
    try:
        fmt = sniff_format(data)
        image = _READERS[fmt](data, max_pixels)
    except RecodecError as exc:
        exc.args = (label + str(exc.args[0]),) + exc.args[1:] if exc.args and label else exc.args
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(f"{label}not enough memory to decode: {exc}") from exc
    except Exception as exc:  # any library error is a corrupt/truncated file
        raise DecodeError(f"{label}{fmt} decode failed: {type(exc).__name__}: {exc}") from exc
    if image.array.ndim != 3 or 0 in image.array.shape:
        raise DecodeError(f"{label}decoded to an empty or malformed array {image.array.shape}")
    return image


# -- outputs -----------------------------------------------------------------------------------

def _get_codec(codec: Codec | str) -> Codec:
    if isinstance(codec, str):
        from recodec.codecs.registry import get_codec

        return get_codec(codec)
    return codec


def tiff_layout(codec: Codec | str, image: Image) -> bool | None:
    """How the geotiff container stores ``image`` with ``codec``: False interleaved, True planar, None impossible."""
    codec = _get_codec(codec)
    compression = codec.capabilities.tiff_compression
    if compression is None or not codec.capabilities.supports(image.dtype, image.bands):
        return None
    contig = _TIFF_CONTIG_BANDS.get(compression)
    if contig is None or image.bands in contig:
        return False
    return None if compression in _TIFF_NO_PLANAR else True


def choose_container(image: Image, codec: Codec | str, requested: str = "auto") -> str:
    """Resolve ``requested`` ("auto", "raw", "geotiff") to "raw" or "geotiff" for this image and codec.

    "auto" picks geotiff for a georeferenced TIFF source whenever the codec has a TIFF
    compression able to hold the image (the lossless zstd-tiff baseline always can), else raw.
    """
    if requested not in CONTAINERS:
        raise ValueError(f"container must be one of {CONTAINERS}, got {requested!r}")
    codec = _get_codec(codec)
    possible = tiff_layout(codec, image) is not None
    if requested == "geotiff" and not possible:
        raise UnsupportedImageError(
            f"codec {codec.name!r} cannot write a GeoTIFF of {image.bands} {image.dtype.name} band(s)"
        )
    if requested == "auto":
        return "geotiff" if image.is_geotiff and possible else "raw"
    return requested


def _nodata_text(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def geotiff_extratags(image: Image) -> list[tuple[int, int, int, Any, bool]]:
    """tifffile ``extratags`` that carry the image's GeoTIFF tags and nodata."""
    tags = dict(image.geotiff_tags)
    if image.nodata is not None:
        tags[42113] = _nodata_text(image.nodata)
    out = []
    for code in sorted(tags):
        if code not in GEOTIFF_TAGS:
            continue
        kind, value = GEOTIFF_TAGS[code], tags[code]
        if kind == 2:
            value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            out.append((code, kind, 0, value, True))
        else:
            values = tuple(np.ravel(np.asarray(value)).tolist())
            out.append((code, kind, len(values), values, True))
    return out


def encode_output(image: Image, codec: Any, params: dict[str, Any], *, container: str = "raw") -> bytes:
    """Encode ``image`` with ``codec`` into the ``raw`` codec format or a tiled ``geotiff``."""
    codec = _get_codec(codec)
    container = choose_container(image, codec, container)
    if container == "raw":
        return codec.encode(image.array, **params)
    array = codec.check_supported(image.array)
    codec.load()
    resolved = codec.resolve_params(params)
    planar = bool(tiff_layout(codec, image))
    alpha_last = image.alpha_band is not None and image.alpha_band == image.bands - 1 and image.bands in (2, 4)
    try:
        return write_tiff(
            array, compression=codec.capabilities.tiff_compression,
            compressionargs=codec.tiff_compressionargs(resolved), planar=planar,
            extrasamples=(2,) if alpha_last and not planar else None,
            extratags=geotiff_extratags(image),
        )
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"{codec.name} GeoTIFF encode failed: {type(exc).__name__}: {exc}") from exc


def decode_output(data: bytes, *, codec: Any = None) -> np.ndarray:
    """Decode bytes recodec wrote (raw codec stream or GeoTIFF container) to (H, W, S)."""
    data = bytes(data)
    if is_tiff(data):
        import tifffile

        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                if not tif.pages:
                    raise DecodeError("TIFF has no image")
                return np.ascontiguousarray(tiff_page_hwc(tif.pages.first))
        except RecodecError:
            raise
        except Exception as exc:
            raise DecodeError(f"TIFF decode failed: {type(exc).__name__}: {exc}") from exc
    if codec is None:
        from recodec.codecs.registry import detect_codec

        codec = detect_codec(data)
        if codec is None:
            raise DecodeError("no registered codec recognises this stream")
    return as_hwc(_get_codec(codec).decode(data))


def output_extension(codec: Any, container: str) -> str:
    """File extension for an output: the codec's own, or ".tif" for the geotiff container."""
    if container == "geotiff":
        return ".tif"
    if container != "raw":
        raise ValueError(f"container must be 'raw' or 'geotiff' here, got {container!r}")
    return _get_codec(codec).capabilities.extension


def to_viewable(array: np.ndarray) -> tuple[bytes, str]:
    """Bytes and extension for looking at a decoded array: PNG for uint8 with 1-4 bands, else TIFF."""
    import imagecodecs

    arr = as_hwc(np.asarray(array))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.uint8 and arr.shape[2] <= 4:
        return bytes(imagecodecs.png_encode(arr if arr.shape[2] > 1 else arr[:, :, 0])), ".png"
    # deflate rather than zstd: every TIFF viewer reads it
    return write_tiff(arr, compression="zlib"), ".tif"


__all__ = [
    "CONTAINERS", "DEFAULT_MAX_PIXELS", "GEOTIFF_TAGS", "Image", "choose_container", "decode_output",
    "encode_output", "geotiff_extratags", "output_extension", "read_image", "sniff_format", "tiff_layout",
    "to_viewable",
]
