"""The decoded image recodec carries from source to output, and array-shape helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recodec.errors import DecodeError, ImageTooLargeError, UnsupportedImageError

if TYPE_CHECKING:
    from recodec.content import ReadOptions

#: Checked against the header before any pixel is decoded.
DEFAULT_MAX_PIXELS = 400_000_000
#: GeoTIFF tags whose presence makes a TIFF georeferenced.
_GEOREFERENCING_TAGS = (33550, 33922, 34264, 34735)


def as_hwc(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as (H, W, S): a 2-D array becomes one band."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        return arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise UnsupportedImageError(f"expected a (H, W) or (H, W, S) array, got shape {arr.shape}")
    return arr


def check_pixels(height: int, width: int, max_pixels: int, what: str) -> None:
    """Refuse an empty image, or one over the pixel limit, from its header alone."""
    if height <= 0 or width <= 0:
        raise DecodeError(f"{what} header declares an empty image ({width} x {height})")
    if height * width > max_pixels:
        raise ImageTooLargeError(
            f"{what} header declares {width} x {height} = {width * height:,} pixels, over the "
            f"limit of {max_pixels:,}"
        )


def check_header(height: int, width: int, bands: int, itemsize: int, options: "ReadOptions", what: str) -> None:
    """Pixel limit and memory budget (width x height x bands x bytes per sample), from the header."""
    from recodec.integrity import check_budget

    check_pixels(height, width, options.max_pixels, what)
    check_budget(height, width, bands, itemsize, options.max_image_bytes, what)


@dataclass
class Image:
    """A decoded source image and what recodec must carry over to its output."""

    array: np.ndarray                 # always (H, W, S)
    format: str                       # "PNG", "JPEG", "TIFF", "WEBP", "JP2"
    bit_depth: int | None = None      # declared bits per integer sample (PNG/TIFF/J2K header), else None
    nodata: float | None = None       # GDAL nodata value, if any
    alpha_band: int | None = None     # index of an alpha band, if any
    geotiff_tags: dict[int, Any] = field(default_factory=dict)  # GeoTIFF tag code -> value
    frames: int = 1                   # frames or pages the source holds (overviews and masks excluded)
    orientation: int = 1              # EXIF / TIFF orientation of the source (already applied to ``array``)
    icc_profile: bytes | None = None  # the source's ICC colour profile, if any
    photometric: str | None = None    # photometric interpretation as stored (TIFF) or implied
    #: What the reader did so that ``array`` shows what a viewer shows ("orientation_applied:6"...).
    actions: list[str] = field(default_factory=list)
    #: Decoder warnings accepted with ``accept_warnings`` (otherwise they fail the row).
    warnings: list[str] = field(default_factory=list)
    #: A GDAL internal mask (TIFF subfile type 4) as (H, W) bool, True = valid.
    internal_mask: np.ndarray | None = None
    #: TIFF tag codes present on the first page (to name the metadata no output carries).
    metadata_tags: frozenset[int] | None = None

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
        return self.format == "TIFF" and any(code in self.geotiff_tags for code in _GEOREFERENCING_TAGS)

    def orient(self, orientation: int) -> "Image":
        """Apply an EXIF/TIFF orientation to the pixels and record it (what a viewer shows)."""
        from recodec.content import apply_orientation

        if orientation != 1:
            self.array = apply_orientation(self.array, orientation)
            self.orientation = orientation
            self.actions.append(f"orientation_applied:{orientation}")
        return self
