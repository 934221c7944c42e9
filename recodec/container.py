"""The output container: a codec's own ``raw`` stream, or a tiled ``geotiff``.

``geotiff`` writes 256 x 256 tiles with the codec's TIFF compression and carries the source's
georeferencing tags, nodata, ICC profile and GDAL internal mask over.  :func:`choose_container`
decides once per image and codec; :func:`encode_output` keeps the content or raises (ICC into
PNG/JPEG/WebP, the nodata/alpha mask exact through a lossless ``.rcmk`` fix-up, see
docs/manifest.md#content), and :func:`container_of` says which container it really wrote.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.base import Codec
from recodec.content import embed_icc, icc_description, is_srgb_profile, output_icc, pixels_as_stored
from recodec.errors import (
    CodecError,
    ContentNotCarriedError,
    DecodeError,
    MaskChangedError,
    UnsupportedImageError,
    library_message,
)
from recodec.formats.image import Image, as_hwc
from recodec.formats.magic import is_tiff
from recodec.formats.tiff import decode_tiff, geotiff_extratags, tiff_internal_mask, write_tiff
from recodec.masks import MaskSpec, is_fixup, mask_changes, unwrap_fixup, wrap_fixup

CONTAINERS = ("auto", "raw", "geotiff")
# Band counts a TIFF tile codec can hold interleaved; other counts go planar (one plane per
# band), or cannot be stored at all (WebP has no gray).
_TIFF_CONTIG_BANDS: dict[str, frozenset[int]] = {
    "jpeg": frozenset({1, 3}),
    "jpegxl": frozenset({1, 3}),
    "webp": frozenset({3, 4}),
}
_TIFF_NO_PLANAR = frozenset({"webp"})


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


def _no_geotiff(codec: Codec, image: Image) -> UnsupportedImageError:
    return UnsupportedImageError(
        f"codec {codec.name!r} cannot write a GeoTIFF of {image.bands} {image.dtype.name} band(s)")


def choose_container(image: Image, codec: Codec | str, requested: str = "auto", *,
                     any_tiff_compression: bool = False) -> str:
    """Resolve ``requested`` ("auto", "raw", "geotiff") to "raw" or "geotiff" for this image and codec.

    "auto" picks geotiff for a georeferenced TIFF source whenever the codec has a TIFF
    compression able to hold the image (the lossless zstd-tiff baseline always can), else raw.
    A compression that common GDAL builds cannot read (JPEG XL, JPEG 2000 inside TIFF), or that
    GDAL decodes to other pixels (JPEG), counts only with ``any_tiff_compression``
    (:mod:`recodec.gdalcompat`): GeoTIFF outputs must open in GIS tools with identical pixels.
    """
    from recodec.gdalcompat import NOT_COMMON, tiff_allowed

    if requested not in CONTAINERS:
        raise ValueError(f"container must be one of {CONTAINERS}, got {requested!r}")
    codec = _get_codec(codec)
    compression = codec.capabilities.tiff_compression
    possible = tiff_layout(codec, image) is not None and tiff_allowed(compression, any_tiff_compression)
    if requested == "geotiff" and not possible:
        if compression in NOT_COMMON and tiff_layout(codec, image) is not None:
            raise UnsupportedImageError(
                f"{codec.name} inside TIFF is read only by {NOT_COMMON[compression]}; "
                "set tiff_any_compression to write it anyway")
        raise _no_geotiff(codec, image)
    if requested == "auto":  # a GDAL internal mask also needs the GeoTIFF container
        from recodec.gdalcompat import auto_geotiff

        wanted = image.is_geotiff or image.internal_mask is not None
        return "geotiff" if wanted and possible and auto_geotiff(compression, any_tiff_compression) else "raw"
    return requested


def _carry_icc(image: Image, payload: bytes) -> bytes:
    """Embed the source's ICC profile in a raw output, or refuse if a viewer would show other colours."""
    if not image.icc_profile:
        return payload
    carried = embed_icc(payload, image.icc_profile)
    if carried is not None:
        return carried
    if is_srgb_profile(image.icc_profile):
        return payload  # untagged pixels are shown as sRGB: same colours (recorded as "srgb_implied")
    raise ContentNotCarriedError(
        f"the source's ICC profile ({icc_description(image.icc_profile) or 'unnamed'}) is not sRGB and this "
        "output format cannot hold it; use png, jpeg, webp or the geotiff container")


def icc_handling(image: Image, payload: bytes) -> str | None:
    """What happened to the source's ICC profile in ``payload``: "carried", "srgb_implied" or None (no profile)."""
    if not image.icc_profile:
        return None
    inner = payload
    if is_fixup(inner):
        inner = inner[9 + int.from_bytes(inner[5:9], "little"):]
    readable, icc = output_icc(inner)
    if readable and icc == image.icc_profile:
        return "carried"
    if not readable and image.format == "JPEG" and inner[:4] != b"RCBP" and pixels_as_stored(image.actions):
        return "carried"  # a lossless JPEG transcode keeps every APP segment of the source
    return "srgb_implied"


def mask_spec(image: Image) -> MaskSpec:
    """The image's nodata value and alpha band as a :class:`MaskSpec`."""
    return MaskSpec(image.nodata, image.alpha_band)


def _keep_mask(image: Image, codec: Codec, payload: bytes) -> bytes:
    """A raw output whose decoded mask equals the source's: as is, or with a lossless fix-up appended."""
    spec = mask_spec(image)
    if not spec.active:
        return payload
    if mask_changes(image.array, as_hwc(codec.decode(payload)), spec) is None:
        return payload
    return wrap_fixup(payload, image.array, spec)


def _write_geotiff(image: Image, codec: Codec, params: dict[str, Any], *, cog: bool = False) -> bytes:
    layout = tiff_layout(codec, image)
    if layout is None:
        raise _no_geotiff(codec, image)
    array = codec.check_supported(image.array)
    codec.load()
    resolved = codec.resolve_params(params)
    planar = bool(layout)
    alpha_last = image.alpha_band is not None and image.alpha_band == image.bands - 1 and image.bands in (2, 4)
    compression, args = codec.capabilities.tiff_compression, codec.tiff_compressionargs(resolved)
    extratags = geotiff_extratags(image)
    if image.icc_profile:
        extratags.append((34675, 7, len(image.icc_profile), image.icc_profile, True))

    def page(level: np.ndarray, overview: bool) -> bytes:
        # tifffile edits compressionargs in place: each page gets its own copy
        return write_tiff(level, compression=compression, compressionargs=dict(args), planar=planar,
                          extrasamples=(2,) if alpha_last else None,
                          extratags=() if overview else extratags,
                          mask=None if overview else image.internal_mask)

    try:
        if cog:
            from recodec.formats.cog import write_cog
            from recodec.formats.tiff import TILE

            return write_cog(array, page, TILE[0])
        return page(array, False)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"{codec.name} GeoTIFF encode failed: {library_message(exc)}") from exc


def encode_output(image: Image, codec: Any, params: dict[str, Any], *, container: str = "raw",
                  cog: bool = False, any_tiff_compression: bool = False) -> bytes:
    """Encode ``image`` with ``codec`` into the ``raw`` codec format or a tiled ``geotiff``.

    The output keeps the source's content or this raises: the ICC profile is embedded (or the
    row fails ``content_not_carried``), the nodata/alpha mask decodes exactly (a raw stream gets a
    lossless fix-up when its codec moved it; a GeoTIFF cannot, so with ``container="auto"`` it
    falls back to raw, and with ``"geotiff"`` it fails ``mask_changed``).  A GDAL internal mask is
    kept in the GeoTIFF container only.  :func:`container_of` tells which container was written.
    ``cog`` makes a GeoTIFF cloud-optimised (overviews in the same codec); ``any_tiff_compression``
    allows TIFF compressions common GDAL builds cannot read (:mod:`recodec.gdalcompat`).
    """
    codec = _get_codec(codec)
    if image.nodata is not None and "nodata" in codec.all_params() and params.get("nodata") is None:
        params = {**params, "nodata": image.nodata}  # codecs that can keep nodata exact are told it
    resolved = choose_container(image, codec, container, any_tiff_compression=any_tiff_compression)
    if resolved == "geotiff":
        payload = _write_geotiff(image, codec, params, cog=cog)
        problem = mask_changes(image.array, decode_output(payload, codec=codec), mask_spec(image))
        if problem is None:
            return payload
        if container != "auto" or image.internal_mask is not None:
            raise MaskChangedError(f"{codec.name} in a GeoTIFF: {problem}")
    if image.internal_mask is not None:
        raise ContentNotCarriedError(
            f"the source's GDAL internal mask can only be kept in a GeoTIFF output; {codec.name} cannot write one")
    return _keep_mask(image, codec, _carry_icc(image, codec.encode(image.array, **params)))


def container_of(payload: bytes, resolved: str) -> str:
    """The container :func:`encode_output` really wrote, given the one :func:`choose_container` resolved."""
    return "geotiff" if resolved == "geotiff" and is_tiff(payload) else "raw"


def decode_output(data: bytes, *, codec: Any = None) -> np.ndarray:
    """Decode bytes recodec wrote (raw codec stream, mask fix-up or GeoTIFF container) to (H, W, S)."""
    data = bytes(data)
    if is_fixup(data):
        return unwrap_fixup(data, lambda inner: decode_output(inner, codec=codec))
    if is_tiff(data):
        return decode_tiff(data)
    if codec is None:
        from recodec.codecs.registry import detect_codec

        codec = detect_codec(data)
        if codec is None:
            raise DecodeError("no registered codec recognises this stream")
    return as_hwc(_get_codec(codec).decode(data))


def output_internal_mask(data: bytes) -> np.ndarray | None:
    """The GDAL internal mask of a TIFF output as (H, W) bool (True = valid), or None."""
    return tiff_internal_mask(data) if is_tiff(data) else None


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
    "CONTAINERS", "choose_container", "container_of", "decode_output", "encode_output", "icc_handling", "mask_spec",
    "output_extension", "output_internal_mask", "tiff_layout", "to_viewable",
]
