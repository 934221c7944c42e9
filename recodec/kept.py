"""Content kept or the row says why: manifest columns and output checks (docs/manifest.md#content).

Pure functions of an image and its output bytes, used by the per-image pipeline
(:mod:`recodec.pipeline`) and by reconcile; the georeferencing sidecar, which touches storage,
is written and checked in :mod:`recodec.tasks.keep`.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import tifffile

from recodec.container import icc_handling, mask_spec, output_internal_mask
from recodec.content import jpeg_container_info, output_icc, png_info
from recodec.errors import MaskChangedError
from recodec.formats.image import Image
from recodec.formats.magic import is_tiff
from recodec.georef import georef_of, pam_xml
from recodec.masks import MaskSpec, check_mask, is_fixup, mask_sha256


def content_columns(image: Image) -> dict[str, Any]:
    """Manifest columns of what the source holds beyond its samples, and what the reader did to it."""
    georef = georef_of(image.geotiff_tags, image.nodata)
    return {
        "source_frames": image.frames,
        "orientation": image.orientation,
        "photometric": image.photometric,
        "content_actions": list(image.actions),
        "icc_sha256": hashlib.sha256(image.icc_profile).hexdigest() if image.icc_profile else None,
        "nodata": image.nodata,
        "alpha_band": image.alpha_band,
        "mask_sha256": mask_sha256(image.array, mask_spec(image), image.internal_mask),
        "crs": georef.crs if georef else None,
        "geotransform": list(georef.geotransform) if georef and georef.geotransform else None,
        "source_warnings": list(image.warnings) or None,
    }


def check_kept(image: Image, payload: bytes, decoded: np.ndarray) -> dict[str, Any]:
    """Raise ``mask_changed`` if the output's mask differs from the source's; the ``icc`` column otherwise."""
    check_mask(image.array, decoded, mask_spec(image))
    if image.internal_mask is not None:
        kept = output_internal_mask(payload)
        if kept is None or kept.shape != image.internal_mask.shape or (kept != image.internal_mask).any():
            raise MaskChangedError("the GDAL internal mask was not kept bit for bit")
    return {"icc": icc_handling(image, payload)}


def container_actions(image: Image, container: str, transcoded: bool = False) -> list[str]:
    """The reader's actions, adjusted for the output: a lossless transcode keeps every marker segment
    of the source (no metadata dropped); GDAL_METADATA is dropped outside a GeoTIFF."""
    if transcoded:
        return [a for a in image.actions if not a.startswith("metadata_dropped:")]
    if container != "geotiff" and 42112 in image.geotiff_tags:
        return [*image.actions, "metadata_dropped:gdal_metadata"]
    return list(image.actions)


def check_georef_carriable(image: Image, container: str) -> None:
    """Fail early (``content_not_carried``) when a raw output could not carry the source's CRS."""
    georef = georef_of(image.geotiff_tags, image.nodata)
    if georef is not None and container != "geotiff":
        pam_xml(georef, image.bands)





def _viewer_problem(row: dict[str, Any], data: bytes) -> str | None:
    """Why a viewer would show the output differently from the source, judged from the output's own tags."""
    inner = data[9 + int.from_bytes(data[5:9], "little"):] if is_fixup(data) else data
    readable, icc = output_icc(inner)
    if row.get("icc") == "carried" and readable and (
            icc is None or hashlib.sha256(icc).hexdigest() != row.get("icc_sha256")):
        return "the source's ICC profile is not in the output"
    if readable and icc is not None and row.get("icc") != "carried":
        return "the output carries an ICC profile the source did not have"
    return _orientation_problem(inner)


def _orientation_problem(data: bytes) -> str | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        orientation = png_info(data).orientation
    elif data[:3] == b"\xff\xd8\xff":
        orientation = jpeg_container_info(data).orientation
    elif is_tiff(data):
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages.first
            if int(page.photometric) == 0:
                return "the output is MINISWHITE: a viewer would invert it"
            orientation = int(page.tags[274].value) if 274 in page.tags else 1
    else:
        return None
    return f"the output has EXIF orientation {orientation}: a viewer would turn it" if orientation != 1 else None


def content_problem(row: dict[str, Any], data: bytes, decoded: np.ndarray) -> tuple[str, str] | None:
    """Reconcile's mask and viewer checks of an output: ``(verdict, detail)`` or None when all is kept."""
    if row.get("mask_sha256"):
        alpha = row.get("alpha_band")
        spec = MaskSpec(row.get("nodata"), None if alpha is None else int(alpha))
        got = mask_sha256(decoded, spec, output_internal_mask(data))
        if got != row["mask_sha256"]:
            return "mask_changed", f"decoded mask hashes {got}, manifest says {row['mask_sha256']}"
    if row.get("container") == "copy":
        return None  # the source itself: nothing was re-tagged
    problem = _viewer_problem(row, data)
    return ("viewer_mismatch", problem) if problem else None


__all__ = ["check_georef_carriable", "check_kept", "container_actions", "content_columns", "content_problem"]
