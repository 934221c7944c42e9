"""Georeferencing of a GeoTIFF source (CRS, transform, nodata) and the sidecar that carries it.

A GeoTIFF output carries the source's GeoTIFF tags unchanged.  Any other output of a
georeferenced source gets a GDAL PAM sidecar next to it, ``<output>.aux.xml``, which GDAL reads
for any file it opens::

    <PAMDataset>
      <SRS>EPSG:32618</SRS>
      <GeoTransform>101985, 300.03, 0, 2826915, 0, -300.04</GeoTransform>
      <PAMRasterBand band="1"><NoDataValue>0</NoDataValue></PAMRasterBand> ...
    </PAMDataset>

The CRS is written as ``EPSG:<code>`` from the GeoKeys (ProjectedCSTypeGeoKey, else
GeographicTypeGeoKey).  A user-defined CRS (code 32767) cannot be written without a projection
library, so such a source keeps the GeoTIFF container or fails ``content_not_carried``.
The manifest records ``crs``, ``geotransform``, ``nodata`` and ``georef`` (where it went).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from recodec.errors import ContentNotCarriedError

PAM_SUFFIX = ".aux.xml"
_USER_DEFINED = 32767


@dataclass(frozen=True)
class Georef:
    """Where a raster sits on Earth, as GDAL describes it."""

    crs: str | None                        # "EPSG:32618", or None when only user-defined
    geotransform: tuple[float, ...] | None  # GDAL order: x0, dx, rx, y0, ry, dy
    nodata: float | None


def _geokeys(directory: Any) -> dict[int, int]:
    values = [int(v) for v in np.ravel(np.asarray(directory))]
    keys = {}
    for i in range(values[3] if len(values) >= 4 else 0):
        entry = values[4 + 4 * i:8 + 4 * i]
        if len(entry) == 4 and entry[1] == 0:  # value stored inline (SHORT)
            keys[entry[0]] = entry[3]
    return keys


def crs_of(tags: dict[int, Any]) -> str | None:
    """``EPSG:<code>`` from the GeoKeyDirectory, or None (no keys or a user-defined CRS)."""
    if 34735 not in tags:
        return None
    keys = _geokeys(tags[34735])
    for key in (3072, 2048):  # ProjectedCSTypeGeoKey, GeographicTypeGeoKey
        code = keys.get(key)
        if code and code != _USER_DEFINED:
            return f"EPSG:{code}"
    return None


def geotransform_of(tags: dict[int, Any]) -> tuple[float, ...] | None:
    """The GDAL geotransform of ModelTransformation, or of ModelTiepoint + ModelPixelScale."""
    if 34264 in tags:
        m = [float(v) for v in np.ravel(np.asarray(tags[34264]))]
        if len(m) >= 8:
            gt = (m[3], m[0], m[1], m[7], m[4], m[5])
        else:
            return None
    elif 33922 in tags and 33550 in tags:
        tie = [float(v) for v in np.ravel(np.asarray(tags[33922]))]
        scale = [float(v) for v in np.ravel(np.asarray(tags[33550]))]
        if len(tie) < 6 or len(scale) < 2:
            return None
        i, j, x, y = tie[0], tie[1], tie[3], tie[4]
        gt = (x - i * scale[0], scale[0], 0.0, y + j * scale[1], 0.0, -scale[1])
    else:
        return None
    if 34735 in tags and _geokeys(tags[34735]).get(1025) == 2:  # PixelIsPoint: GDAL shifts half a pixel
        gt = (gt[0] - 0.5 * gt[1] - 0.5 * gt[2], gt[1], gt[2], gt[3] - 0.5 * gt[4] - 0.5 * gt[5], gt[4], gt[5])
    return gt


def georef_of(tags: dict[int, Any], nodata: float | None) -> Georef | None:
    """The georeferencing of a source's GeoTIFF tags, or None when it has none."""
    if not any(code in tags for code in (33550, 33922, 34264, 34735)):
        return None
    return Georef(crs_of(tags), geotransform_of(tags), nodata)


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def pam_xml(georef: Georef, bands: int) -> bytes:
    """A GDAL PAM ``.aux.xml`` document carrying CRS, geotransform and per-band nodata."""
    if georef.crs is None and georef.geotransform is not None:
        raise ContentNotCarriedError(
            "the source's CRS is user-defined (no EPSG code): only a GeoTIFF output can carry it; "
            "use a codec with a TIFF compression or --container geotiff")
    lines = ["<PAMDataset>"]
    if georef.crs:
        lines.append(f"  <SRS>{escape(georef.crs)}</SRS>")
    if georef.geotransform:
        lines.append(f"  <GeoTransform>{', '.join(repr(float(v)) for v in georef.geotransform)}</GeoTransform>")
    if georef.nodata is not None:
        for band in range(1, bands + 1):
            lines.append(f'  <PAMRasterBand band="{band}"><NoDataValue>{_number(georef.nodata)}</NoDataValue>'
                         "</PAMRasterBand>")
    lines.append("</PAMDataset>")
    return ("\n".join(lines) + "\n").encode()


def parse_pam(data: bytes) -> Georef:
    """Read back what :func:`pam_xml` wrote (for reconcile and tests)."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(data)
    srs = root.findtext("SRS")
    gt_text = root.findtext("GeoTransform")
    nodata_text = root.findtext("PAMRasterBand/NoDataValue")
    gt = tuple(float(v) for v in gt_text.split(",")) if gt_text else None
    return Georef(srs.strip() if srs else None, gt, float(nodata_text) if nodata_text else None)


__all__ = ["PAM_SUFFIX", "Georef", "crs_of", "georef_of", "geotransform_of", "pam_xml", "parse_pam"]
