"""Which TIFF compressions GIS tools (GDAL) read: GeoTIFF outputs must open in them unless opted out.

recodec writes its GeoTIFF container with the codec's TIFF compression through imagecodecs/tifffile,
which know more compressions than GDAL.  Measured with the GDAL bundled in the rasterio 1.4.4 wheel
(GDAL 3.10.3, ``tests/ops/test_gdal.py``): JPEG, WebP, ZSTD, LERC, Deflate and LZW TIFFs open;
JPEG XL and JPEG 2000 inside TIFF fail with "missing codec".

* ``jpegxl`` (TIFF compression 50002): read by GDAL >= 3.4 *built with libjxl* (not the rasterio
  wheels, not most distribution builds).
* ``jpeg2000`` (TIFF compression 34712): no GDAL version reads it; only imagecodecs/tifffile do.

Without the opt-in (``RunConfig.tiff_any_compression``) those codecs never write the GeoTIFF
container: ``auto`` keeps their own format (``.jxl``, ``.jp2``) plus a georeferencing sidecar, and an
explicit ``--container geotiff`` is refused.
"""

from __future__ import annotations

#: TIFF compressions (imagecodecs names) that GDAL builds commonly read.
GDAL_READABLE = frozenset({"jpeg", "webp", "zstd", "lerc", "zlib", "deflate", "lzw", "packbits", "none"})
#: Compressions GDAL builds commonly lack, and which GDAL reads them at all.
NOT_COMMON: dict[str, str] = {
    "jpegxl": "GDAL >= 3.4 built with libjxl (the rasterio 1.4.4 wheel's GDAL 3.10.3 lacks it)",
    "jpeg2000": "no GDAL version (only imagecodecs/tifffile read JPEG 2000 inside TIFF)",
}


#: Compressions GDAL reads, but decodes to other pixels than recodec's decoder (so the manifest's
#: ``decoded_sha256`` and metrics would not describe what a GIS user sees).  Measured with the
#: rasterio 1.4.4 wheel: JPEG-in-TIFF is YCbCr; GDAL's libjpeg upsamples 4:2:0 chroma differently
#: (up to 76 levels at edges) and even 4:4:4 differs by 1 level on a few pixels.  ``auto`` only
#: picks them with the opt-in; an explicit ``--container geotiff`` is the user's choice.
PIXELS_DIFFER: dict[str, str] = {
    "jpeg": "GDAL's libjpeg (it upsamples YCbCr chroma differently: pixels differ at edges)",
}


def auto_geotiff(compression: str | None, opt_in: bool = False) -> bool:
    """Whether ``auto`` may choose a GeoTIFF in this compression: GDAL reads it to identical pixels."""
    return tiff_allowed(compression, opt_in) and (opt_in or compression not in PIXELS_DIFFER)


def tiff_allowed(compression: str | None, opt_in: bool = False) -> bool:
    """Whether a GeoTIFF with this compression may be written (always, with the opt-in)."""
    if compression is None:
        return False
    return opt_in or compression not in NOT_COMMON
