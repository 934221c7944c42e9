"""Codecs: one module per codec family, all behind one registry.

>>> from recodec.codecs import get_codec
>>> jpeg = get_codec("jpeg")
>>> data = jpeg.encode(array, quality=85)
"""

from recodec.codecs.base import Capabilities, Codec, Knob, Param, as_hwc
from recodec.codecs.registry import (
    ENTRY_POINT_GROUP,
    AUTO_CODECS,
    BOUNDED_AUTO_CODECS,
    detect_codec,
    expand_codecs,
    get_codec,
    list_codecs,
    register,
    unregister,
)

__all__ = [
    "AUTO_CODECS",
    "BOUNDED_AUTO_CODECS",
    "expand_codecs",
    "ENTRY_POINT_GROUP",
    "Capabilities",
    "Codec",
    "Knob",
    "Param",
    "as_hwc",
    "detect_codec",
    "get_codec",
    "list_codecs",
    "register",
    "unregister",
]
