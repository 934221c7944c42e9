"""Compatibility facade: image I/O moved to :mod:`recodec.formats` (sources) and :mod:`recodec.container`.

New code imports from those modules; this one only re-exports their public names.
"""

from recodec.container import (
    CONTAINERS,
    choose_container,
    container_of,
    decode_output,
    encode_output,
    icc_handling,
    mask_spec,
    output_extension,
    output_internal_mask,
    tiff_layout,
    to_viewable,
)
from recodec.formats.image import DEFAULT_MAX_PIXELS, Image
from recodec.formats.source import read_image, sniff_format
from recodec.formats.tiff import GEOTIFF_TAGS, geotiff_extratags

__all__ = [
    "CONTAINERS", "DEFAULT_MAX_PIXELS", "GEOTIFF_TAGS", "Image", "choose_container", "container_of",
    "decode_output", "encode_output", "geotiff_extratags", "icc_handling", "mask_spec", "output_extension",
    "output_internal_mask", "read_image", "sniff_format", "tiff_layout", "to_viewable",
]
