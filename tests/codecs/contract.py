"""The codec contract, as one test class every codec's test module inherits.

A subclass sets ``codec_name``; ``conftest.pytest_generate_tests`` parametrises ``layout`` over
every (dtype, band count) the codec's capabilities claim, out of a fixed menu of layouts.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np
import pytest

from recodec.codecs import detect_codec, get_codec
from recodec.codecs.base import Capabilities, Codec, Knob, Param
from recodec.errors import CodecError, CodecUnavailableError, DecodeError, UnsupportedImageError

HEIGHT, WIDTH = 48, 40
BAND_COUNTS = (1, 2, 3, 4, 7)
ALL_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
              "float16", "float32", "float64", "complex64")
#: Value range of the synthetic images per dtype.
RANGES: dict[str, tuple[float, float]] = {
    "bool": (0, 1), "int8": (-100, 100), "uint8": (0, 255), "int16": (-3000, 3000), "uint16": (0, 60000),
    "int32": (-100000, 100000), "uint32": (0, 1_000_000), "int64": (-100000, 100000),
    "uint64": (0, 1_000_000), "float32": (-1.0, 1.0), "float64": (-1.0, 1.0),
}


def make_image(dtype: str, bands: int, *, height: int = HEIGHT, width: int = WIDTH, seed: int = 0,
               value_range: tuple[float, float] | None = None) -> np.ndarray:
    """A (H, W, S) test image: smooth gradients and waves plus a little noise, different per band."""
    rng = np.random.default_rng(seed)
    lo, hi = value_range or RANGES[dtype]
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for k in range(bands):
        smooth = 0.5 + 0.25 * np.sin(x / (5 + k) + k) + 0.2 * np.cos(y / (7 + 2 * k)) * (x / width)
        planes.append(np.clip(smooth + rng.normal(0, 0.02, smooth.shape), 0, 1))
    unit = np.stack(planes, axis=-1)
    if dtype == "bool":
        return unit > 0.5
    values = lo + unit * (hi - lo)
    if np.issubdtype(np.dtype(dtype), np.integer):
        values = np.rint(values)
    return values.astype(dtype)


class CodecContract:
    """Tests every codec must pass; subclasses set ``codec_name`` and may tune the class knobs."""

    codec_name: ClassVar[str]
    #: Value range per dtype when the codec needs a narrower one than :data:`RANGES`.
    ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    #: Params that select the lossless mode, or None when the codec has none.
    lossless_params: ClassVar[dict[str, Any] | None] = None
    #: Params for a lossy encode (defaults when empty).
    lossy_params: ClassVar[dict[str, Any]] = {}
    #: Modules whose absence must make ``load()`` name the codec's extra.
    dependencies: ClassVar[tuple[str, ...]] = ("imagecodecs", "PIL.Image", "PIL.WebPImagePlugin", "tifffile")

    @pytest.fixture
    def codec(self) -> Codec:
        """The registered codec instance."""
        return get_codec(self.codec_name)

    def image(self, layout: tuple[str, int], seed: int = 0) -> np.ndarray:
        """The synthetic image for a layout, in this codec's value range."""
        dtype, bands = layout
        return make_image(dtype, bands, seed=seed, value_range=self.ranges.get(dtype))

    # -- declarations ------------------------------------------------------------------------

    def test_declarations(self, codec: Codec) -> None:
        assert codec.name == self.codec_name
        assert isinstance(codec.capabilities, Capabilities)
        assert isinstance(codec.knob, Knob)
        assert all(isinstance(p, Param) for p in codec.params)
        assert codec.summary and codec.capabilities.extension.startswith(".")
        assert codec.capabilities.lossy or codec.capabilities.lossless
        knob = codec.knob
        assert knob.low <= knob.default <= knob.high or knob.default == knob.lossless_value
        names = [p.name for p in codec.params]
        assert len(set(names)) == len(names) and codec.knob.name not in names
        assert ("lossless" in names) == (codec.capabilities.lossy and codec.capabilities.lossless)
        assert isinstance(codec.version(), str) and codec.version() not in ("", "unknown")
        resolved = codec.resolve_params({})
        assert codec.tiff_compressionargs(resolved) is not None

    def test_missing_dependency_names_the_extra(self, codec: Codec, monkeypatch: pytest.MonkeyPatch) -> None:
        for module in self.dependencies:
            monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(CodecUnavailableError, match=rf"recodec\[{codec.extra}\]"):
            codec.load()
        assert not codec.available()

    # -- round trips -------------------------------------------------------------------------

    def test_roundtrip(self, codec: Codec, layout: tuple[str, int]) -> None:
        src = self.image(layout)
        data = codec.encode(src, **self.lossy_params)
        assert isinstance(data, bytes) and data
        out = codec.decode(data)
        assert out.shape == src.shape and out.dtype == src.dtype
        if not codec.capabilities.lossy:
            np.testing.assert_array_equal(out, src)

    def test_lossless_roundtrip_is_exact(self, codec: Codec, layout: tuple[str, int]) -> None:
        if not codec.capabilities.lossless:
            pytest.skip("no lossless mode")
        src = self.image(layout)
        out = codec.decode(codec.encode(src, **(self.lossless_params or {})))
        assert out.dtype == src.dtype
        np.testing.assert_array_equal(out, src)

    def test_two_dimensional_input_is_one_band(self, codec: Codec) -> None:
        dtype = self.any_layout(codec)[0]
        if not codec.capabilities.supports(dtype, 1):
            pytest.skip("no one-band layout")
        src = self.image((dtype, 1))[:, :, 0]
        # lossy_params: the layout is what is checked, not the defaults (overfit's default fit takes ~40 s)
        assert codec.decode(codec.encode(src, **self.lossy_params)).shape == (*src.shape, 1)

    def test_deterministic(self, codec: Codec, layout: tuple[str, int]) -> None:
        src = self.image(layout)
        assert codec.encode(src, **self.lossy_params) == codec.encode(src.copy(), **self.lossy_params)

    def test_sniff_and_detect(self, codec: Codec, layout: tuple[str, int]) -> None:
        src = self.image(layout)
        outputs = [codec.encode(src, **self.lossy_params)]
        if self.lossless_params is not None:
            outputs.append(codec.encode(src, **self.lossless_params))
        for data in outputs:
            assert codec.sniff(data)
            detected = detect_codec(data)
            assert detected is not None and detected.name == self.codec_name

    # -- bad input ---------------------------------------------------------------------------

    def test_truncated_input_raises_decode_error(self, codec: Codec, layout: tuple[str, int]) -> None:
        data = codec.encode(self.image(layout), **self.lossy_params)
        for cut in sorted({1, 8, 16, len(data) // 3, len(data) // 2, len(data) - 100, len(data) - 1}):
            if 0 < cut < len(data):
                with pytest.raises(DecodeError):
                    codec.decode(data[:cut])

    def test_garbage_raises_decode_error(self, codec: Codec) -> None:
        rng = np.random.default_rng(1)
        noise = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
        for data in (noise, b"\x00" * 64, b"not an image at all"):
            with pytest.raises(DecodeError):
                codec.decode(data)
        with pytest.raises(DecodeError):
            codec.decode(b"")

    def test_corrupted_body_never_crashes(self, codec: Codec) -> None:
        layout = ("uint8", 3) if codec.capabilities.supports("uint8", 3) else self.any_layout(codec)
        data = bytearray(codec.encode(self.image(layout), **self.lossy_params))
        rng = np.random.default_rng(2)
        for pos in rng.integers(len(data) // 4, len(data), 8):
            data[pos] ^= 0xFF
        try:
            out = codec.decode(bytes(data))
        except CodecError:
            return  # a clean, typed refusal
        assert out.ndim == 3  # some formats carry no checksum: garbage pixels, but no crash

    def test_unsupported_layouts_raise(self, codec: Codec) -> None:
        caps = codec.capabilities
        for dtype in ALL_DTYPES:
            if dtype not in caps.dtypes:
                with pytest.raises(UnsupportedImageError):
                    codec.encode(np.zeros((8, 8, 1), dtype=dtype))
        layout = self.any_layout(codec)
        if caps.max_bands is not None:
            with pytest.raises(UnsupportedImageError):
                codec.encode(make_image(layout[0], caps.max_bands + 1))
        with pytest.raises(UnsupportedImageError):
            codec.encode(np.zeros((0, 8, 1), dtype=layout[0]))
        with pytest.raises(UnsupportedImageError):
            codec.encode(np.zeros((2, 8, 8, 1), dtype=layout[0]))

    @staticmethod
    def any_layout(codec: Codec) -> tuple[str, int]:
        """The first layout the codec supports."""
        return next((d, b) for d in codec.capabilities.dtypes for b in BAND_COUNTS
                    if codec.capabilities.supports(d, b))


def supported_layouts(codec: Codec) -> list[tuple[str, int]]:
    """Every (dtype, band count) of the test menu that ``codec`` claims to hold."""
    return [(d, b) for d in codec.capabilities.dtypes for b in BAND_COUNTS
            if d in RANGES and codec.capabilities.supports(d, b)]
