"""TIFF and GeoTIFF: tiled writing, page reading, GeoTIFF tags and nodata.

Used by the source reader (GeoTIFF/COG sources), the ``zstd-tiff`` codec and the ``geotiff``
output container.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recodec.errors import DecodeError, RecodecError, UnsupportedImageError, library_message
from recodec.formats.image import Image, check_header
from recodec.formats.magic import TIFF_MAGICS, is_tiff

if TYPE_CHECKING:
    from recodec.content import ReadOptions

TILE = (256, 256)
#: TIFF compressions tifffile refuses a predictor with (they transform the data themselves).
_NO_PREDICTOR = frozenset({"jpeg", "jpeg2000", "jpegxl", "webp", "lerc", "png", "jpegxr", "avif"})
SOURCE_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"})

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

def write_tiff(array: np.ndarray, *, compression: str | None, compressionargs: dict[str, Any] | None = None,
               planar: bool = False, photometric: str | None = None, extrasamples: Sequence[int] | None = None,
               extratags: Sequence[tuple[Any, ...]] = (), tile: tuple[int, int] = TILE,
               mask: np.ndarray | None = None) -> bytes:
    """A tiled TIFF of a (H, W, S) array; ``planar`` stores one plane per band (planarconfig separate).

    ``mask`` ((H, W) bool, True = valid) is written as a GDAL internal mask: a second, bilevel
    IFD with NewSubfileType 4 (transparency mask), deflate-compressed.
    """
    import tifffile

    bands = array.shape[2]
    # no bigger than the image (rounded up to the multiple of 16 TIFF requires): less padding
    tile = (min(tile[0], -(-array.shape[0] // 16) * 16), min(tile[1], -(-array.shape[1] // 16) * 16))
    if photometric is None:
        photometric = "rgb" if bands == 3 or (bands == 4 and extrasamples) else "minisblack"
    data = array[:, :, 0] if bands == 1 else np.moveaxis(array, -1, 0) if planar else array
    buf = io.BytesIO()
    predictor = None
    if compression not in _NO_PREDICTOR and compression is not None and (
            array.dtype.kind == "f" or (array.dtype.kind in "iu" and array.dtype.itemsize <= 4)):
        predictor = True  # horizontal differencing for integers, floating-point predictor for floats
    with tifffile.TiffWriter(buf, bigtiff=array.nbytes > 2**32 - 2**25) as tif:
        tif.write(
            np.ascontiguousarray(data), photometric=photometric,
            planarconfig=None if bands == 1 else "separate" if planar else "contig", extrasamples=extrasamples,
            tile=tile, compression=compression, compressionargs=compressionargs, predictor=predictor,
            extratags=list(extratags), metadata=None, software=False,
        )
        if mask is not None:
            tif.write(np.asarray(mask, bool), subfiletype=4, tile=tile, compression="zlib", metadata=None,
                      software=False)
    return buf.getvalue()


def tiff_page_hwc(page: Any) -> np.ndarray:
    """Decode one tifffile page to (H, W, S), whatever its planar configuration."""
    arr = page.asarray(maxworkers=1)
    axes = page.axes
    if arr.ndim != len(axes):
        raise DecodeError(f"unexpected TIFF page layout {axes!r} for shape {arr.shape}")
    for i in reversed(range(len(axes))):  # drop singleton non-spatial axes (e.g. a 1-frame volume)
        if axes[i] not in "YXS" and arr.shape[i] == 1:
            arr, axes = arr.squeeze(i), axes[:i] + axes[i + 1:]
    if sorted(axes) not in (["X", "Y"], ["S", "X", "Y"]):
        raise DecodeError(f"unsupported TIFF page layout {page.axes!r} (only 2-D images with samples)")
    if "S" not in axes:
        arr, axes = arr[..., np.newaxis], axes + "S"
    return np.transpose(arr, [axes.index(c) for c in "YXS"])


def decode_tiff(data: bytes) -> np.ndarray:
    """Decode the first page of TIFF bytes to a contiguous (H, W, S) array; DecodeError if corrupt."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            if not tif.pages:
                raise DecodeError("TIFF has no image")
            return np.ascontiguousarray(tiff_page_hwc(tif.pages.first))
    except RecodecError:
        raise
    except Exception as exc:
        raise DecodeError(f"TIFF decode failed: {library_message(exc)}") from exc


def tiff_internal_mask(data: bytes) -> np.ndarray | None:
    """The GDAL internal mask of TIFF bytes as (H, W) bool (True = valid), or None."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        return _tiff_pages(tif, tif.pages.first)[1]


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


def parse_nodata(value: Any) -> float | None:
    """The GDAL_NODATA tag's text as a float, or None when it is not a number."""
    try:
        return float(str(value).strip().strip("\x00"))
    except ValueError:
        return None


_MAX_PAGES_SCANNED = 64
# Photometric interpretations that need an ink or colorimetric transform to display: refused.
_REFUSED_PHOTOMETRIC = {5: "cmyk"}


def _tiff_pages(tif: Any, page: Any) -> tuple[int, np.ndarray | None]:
    """Full-resolution pages of a TIFF (overviews excluded, up to a cap) and its GDAL internal mask."""
    frames, mask = 0, None
    for i, p in enumerate(tif.pages):
        if i >= _MAX_PAGES_SCANNED:
            frames = max(frames, _MAX_PAGES_SCANNED)
            break
        kind = int(getattr(p, "subfiletype", 0) or 0)
        if kind & 1:  # reduced-resolution overview
            continue
        if kind & 4:  # transparency mask
            if mask is None and (p.imagelength, p.imagewidth) == (page.imagelength, page.imagewidth):
                mask = np.asarray(p.asarray(maxworkers=1)).reshape(page.imagelength, page.imagewidth) != 0
                # an all-valid mask says nothing a reader without it would not assume: not content
                mask = None if mask.all() else mask
            continue
        frames += 1
    return max(frames, 1), mask


def _tiff_photometric(tifffile: Any, page: Any, arr: np.ndarray, bit_depth: int | None,
                      actions: list[str]) -> tuple[np.ndarray, int | None]:
    """Pixels as a viewer shows them: palette expanded, MINISWHITE inverted; others refused."""
    photometric = int(page.photometric)
    if photometric in _REFUSED_PHOTOMETRIC:
        raise UnsupportedImageError(
            f"TIFF photometric {page.photometric.name} is refused: converting it needs a colour-managed "
            "transform that would change the archived pixels (docs/manifest.md#content)",
            reason=_REFUSED_PHOTOMETRIC[photometric])
    if photometric == tifffile.PHOTOMETRIC.PALETTE and page.colormap is not None:
        cmap = np.asarray(page.colormap)
        if not (cmap % 257).any():  # 8-bit palette stored as 16-bit TIFF colormap
            cmap = (cmap // 257).astype(np.uint8)
        actions.append("palette_expanded")
        return np.moveaxis(cmap[:, arr[:, :, 0]], 0, -1), 8 if cmap.dtype == np.uint8 else 16
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        if arr.dtype.kind != "u" or bit_depth is None:
            raise UnsupportedImageError(f"MINISWHITE {arr.dtype.name} TIFF is not supported",
                                        reason="unsupported_photometric")
        actions.append("miniswhite_inverted")
        return (arr.dtype.type(2**bit_depth - 1) - arr).astype(arr.dtype), bit_depth
    if photometric == tifffile.PHOTOMETRIC.YCBCR and int(page.compression) in (6, 7):
        actions.append("ycbcr_to_rgb")  # the JPEG decoder converts, as every viewer does
        return arr, bit_depth
    if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
        raise UnsupportedImageError(f"TIFF photometric {page.photometric.name} is not supported",
                                    reason="unsupported_photometric")
    return arr, bit_depth


def read_tiff(data: bytes, options: "ReadOptions") -> Image:
    """Read the first IFD of a source TIFF (full resolution of a COG): GeoTIFF tags, frames, mask, photometric."""
    import tifffile

    from recodec.content import check_frames
    from recodec.integrity import check_tiff_plausible, jpeg_tile_warnings, judge_warnings, tifffile_warnings

    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if not tif.pages:
            raise DecodeError("TIFF has no image")
        page = tif.pages.first
        expands = int(page.photometric) == 3  # palette: 3 bands of the colormap's 16 bits
        check_header(int(page.imagelength), int(page.imagewidth), 3 if expands else int(page.samplesperpixel),
                      2 if expands else np.dtype(page.dtype or np.uint8).itemsize, options, "TIFF")
        if page.imagedepth > 1:
            raise DecodeError("volumetric (SGI ImageDepth) TIFF is not supported")
        check_tiff_plausible(page, len(data))
        frames, internal_mask = _tiff_pages(tif, page)
        actions = [a for a in (check_frames(frames, options, "TIFF"),) if a]
        with tifffile_warnings() as logged:
            arr = tiff_page_hwc(page)
        warnings = judge_warnings(logged + jpeg_tile_warnings(page, data), options.accept_warnings, "TIFF")
        bit_depth: int | None = int(page.bitspersample) if arr.dtype.kind in "biu" else None
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8)
        arr, bit_depth = _tiff_photometric(tifffile, page, arr, bit_depth, actions)
        if arr.dtype.name not in SOURCE_DTYPES:
            raise UnsupportedImageError(f"TIFF sample type {arr.dtype.name} is not supported")
        tags = {code: page.tags[code].value for code in GEOTIFF_TAGS if code in page.tags}
        page_tags = [tag.code for tag in page.tags]
        icc = page.tags[34675].value if 34675 in page.tags else None
        orientation = int(page.tags[274].value) if 274 in page.tags else 1
        photometric = page.photometric.name.lower()
        extras = tuple(int(e) for e in (page.extrasamples or ()))
        alpha = None
        for i, kind in enumerate(extras):
            if kind in (1, 2):  # associated / unassociated alpha
                alpha = arr.shape[2] - len(extras) + i
                break
    nodata = parse_nodata(tags[42113]) if 42113 in tags else None
    image = Image(np.ascontiguousarray(arr), "TIFF", bit_depth=bit_depth, nodata=nodata, alpha_band=alpha,
                  geotiff_tags=tags, frames=frames, icc_profile=bytes(icc) if icc else None,
                  photometric=photometric, actions=actions, warnings=warnings, internal_mask=internal_mask,
                  metadata_tags=frozenset(page_tags))
    if orientation != 1 and image.is_geotiff:
        raise UnsupportedImageError("a GeoTIFF with a TIFF Orientation tag is ambiguous (the transform "
                                    "refers to stored pixels)", reason="unsupported_orientation")
    return image.orient(orientation if 1 <= orientation <= 8 else 1)


__all__ = [
    "GEOTIFF_TAGS", "SOURCE_DTYPES", "TIFF_MAGICS", "TILE", "decode_tiff", "geotiff_extratags", "is_tiff",
    "parse_nodata", "read_tiff", "tiff_internal_mask", "tiff_page_hwc", "write_tiff",
]
