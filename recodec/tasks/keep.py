"""The georeferencing sidecar of raw outputs (written and re-checked on storage), and reconcile's
content checks (docs/manifest.md#content); the storage-free parts live in :mod:`recodec.kept`.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import tifffile

from recodec.formats.image import Image
from recodec.georef import PAM_SUFFIX, georef_of, pam_xml
from recodec.kept import content_problem
from recodec.storage import atomic_write, full_url, url_to_fs


def write_sidecar(fs: Any, dest_path: str, image: Image, container: str) -> tuple[dict[str, Any], str | None]:
    """Georeferencing of the output: in the GeoTIFF, or a PAM ``.aux.xml`` written beside a raw output.

    Returns the row columns and the sidecar path written (None when none was needed).
    """
    georef = georef_of(image.geotiff_tags, image.nodata)
    if georef is None:
        return {"georef": None}, None
    if container == "geotiff":
        return {"georef": "geotiff"}, None
    xml = pam_xml(georef, image.bands)
    path = dest_path + PAM_SUFFIX
    atomic_write(fs, path, xml, durable=False)  # flushed with the shard's outputs
    return {"georef": "sidecar", "sidecar_uri": full_url(fs, path),
            "sidecar_sha256": hashlib.sha256(xml).hexdigest()}, path


def _georef_problem(row: dict[str, Any], data: bytes, storage_options: dict[str, Any] | None) -> str | None:
    if row.get("georef") == "geotiff":
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            tags = tif.pages.first.tags
            return None if 34735 in tags and (33922 in tags or 34264 in tags) else "the GeoTIFF lost its GeoKeys"
    if row.get("georef") == "sidecar":
        fs, path = url_to_fs(row["sidecar_uri"], storage_options)
        try:
            xml = fs.cat_file(path)
        except FileNotFoundError:
            return f"sidecar {row['sidecar_uri']} is missing"
        if hashlib.sha256(xml).hexdigest() != row.get("sidecar_sha256"):
            return f"sidecar {row['sidecar_uri']} does not match its recorded SHA-256"
    return None


def verify_kept(row: dict[str, Any], data: bytes, decoded: np.ndarray,
                storage_options: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """Reconcile's content checks on an output: ``(verdict, detail)`` or None when all is kept."""
    problem = content_problem(row, data, decoded)
    if problem or row.get("container") == "copy":
        return problem
    detail = _georef_problem(row, data, storage_options)
    return ("georef_missing", detail) if detail else None


__all__ = ["verify_kept", "write_sidecar"]
