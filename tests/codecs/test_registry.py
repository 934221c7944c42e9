"""The registry finds every built-in codec and detects each one's own output."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from recodec.codecs import detect_codec, get_codec, list_codecs, register, unregister
from recodec.codecs.base import Codec
from recodec.codecs.registry import _BUILTIN
from recodec.errors import UnknownCodecError
from tests.codecs.contract import make_image

CLASSICAL = ["jpeg", "webp", "avif", "jxl", "jpeg2000", "htj2k", "lerc", "png", "zstd-tiff"]


@pytest.mark.parametrize("name", CLASSICAL)
def test_builtin_class_names_match_the_table(name: str) -> None:
    module, _, attr = _BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    assert issubclass(cls, Codec) and cls.name == name
    assert get_codec(name) is get_codec(name)
    assert name in list_codecs()


def test_each_codec_output_is_detected_as_its_own() -> None:
    src = make_image("uint8", 3)
    for name in CLASSICAL:
        data = get_codec(name).encode(src)
        assert detect_codec(data).name == name, name


def test_band_packs_are_detected_by_their_codec_name() -> None:
    src = make_image("uint8", 7)
    for name in ("jpeg", "webp", "avif", "jxl"):
        data = get_codec(name).encode(src)
        assert data[:4] == b"RCBP" and detect_codec(data).name == name


def test_unknown_bytes_are_not_detected() -> None:
    assert detect_codec(b"%PDF-1.7 hello") is None
    assert detect_codec(b"") is None
    with pytest.raises(UnknownCodecError):
        get_codec("no-such-codec")


def test_register_a_plugin_codec() -> None:
    class Dummy(Codec):
        name = "dummy-test"
        capabilities = get_codec("png").capabilities
        knob = get_codec("png").knob

        def _encode(self, array: np.ndarray, params: dict) -> bytes:
            return b"DUMMY" + array.tobytes()

        def _decode(self, data: bytes) -> np.ndarray:
            return np.zeros((1, 1, 1), np.uint8)

        def sniff(self, data: bytes, /) -> bool:
            return data.startswith(b"DUMMY")

    register("dummy-test", Dummy)
    try:
        assert detect_codec(get_codec("dummy-test").encode(make_image("uint8", 1))).name == "dummy-test"
    finally:
        unregister("dummy-test")
