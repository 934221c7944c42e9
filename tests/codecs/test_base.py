"""The codec contract helpers: knobs as the spec names them, params, band packs."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.bandpack import (
    band_groups,
    decode_grouped,
    encode_grouped,
    is_band_pack,
    pack_bands,
    unpack_bands,
)
from recodec.errors import ConfigError, DecodeError

KNOBS = {
    # name: (knob, higher_is_better, quality_shortcut, lossless_value)
    "jpeg": ("quality", True, True, None),
    "webp": ("quality", True, True, None),
    "avif": ("quality", True, True, None),
    "jxl": ("distance", False, False, 0.0),
    "jpeg2000": ("psnr", True, False, 0.0),
    "htj2k": ("psnr", True, False, 0.0),
    "lerc": ("max_error", False, False, 0.0),
}


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_main_knobs_are_named_and_oriented(name: str) -> None:
    codec = get_codec(name)
    knob, higher, shortcut, lossless = KNOBS[name]
    assert (codec.knob.name, codec.knob.higher_is_better, codec.knob.quality_shortcut) == (knob, higher, shortcut)
    assert codec.knob.lossless_value == lossless
    if shortcut:
        assert (codec.knob.low, codec.knob.high) == (1, 100)
    assert ("lossless" in codec.all_params()) == codec.capabilities.lossless


def test_cli_strings_are_coerced() -> None:
    assert get_codec("jxl").resolve_params({"distance": "0.5", "effort": "9", "lossless": "no"}) == {
        "distance": 0.5, "effort": 9, "lossless": False}
    assert get_codec("avif").resolve_params({}, quality=60)["quality"] == 60
    with pytest.raises(ConfigError):
        get_codec("jxl").resolve_params({}, quality=60)  # distance is not a 1-100 quality
    with pytest.raises(ConfigError):
        get_codec("webp").resolve_params({"effort": 3})
    with pytest.raises(ConfigError):
        get_codec("jpeg2000").resolve_params({"psnr": 5})


def test_band_groups() -> None:
    assert band_groups(3, {1, 3}) == [3]
    assert band_groups(4, {1, 3}) == [3, 1]
    assert band_groups(4, {1, 2, 3, 4}) == [4]
    assert band_groups(2, {1, 3}) == [1, 1]
    assert band_groups(1, {3}) == [1]
    assert band_groups(6, {1, 3}) == [1] * 6


def test_band_pack_roundtrip_and_corruption() -> None:
    parts = [({"bands": 2}, b"abc"), ({"bands": 1}, b"defg")]
    data = pack_bands("x", (4, 5, 3), "uint16", parts)
    assert is_band_pack(data) and is_band_pack(data, "x") and not is_band_pack(data, "y")
    header, back = unpack_bands(data)
    assert header["shape"] == [4, 5, 3] and header["dtype"] == "uint16"
    assert [p for _, p in back] == [b"abc", b"defg"]
    for bad in (data[:-1], data + b"!", data[:12], data[:5] + b"\xff\xff\xff\xff" + data[9:]):
        with pytest.raises(DecodeError):
            unpack_bands(bad)
    with pytest.raises(DecodeError):
        unpack_bands(pack_bands("x", (4, 5, 4), "uint8", parts))  # bands do not add up


def test_grouped_helpers_split_and_join() -> None:
    src = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    seen: list[int] = []

    def enc(part: np.ndarray) -> bytes:
        seen.append(part.shape[2])
        return part.tobytes() + bytes([part.shape[2]])

    def dec(blob: bytes) -> np.ndarray:
        return np.frombuffer(blob[:-1], np.uint8).reshape(4, 5, blob[-1])

    data = encode_grouped("t", src, frozenset({1, 3}), enc)
    assert seen == [3, 1]
    np.testing.assert_array_equal(decode_grouped("t", data, dec), src)
    with pytest.raises(DecodeError, match="written by"):
        decode_grouped("other", data, dec)
