"""The codec contract every recodec codec follows.

A codec is a small object with a name, declared capabilities, one documented
quality knob and two methods::

    data = codec.encode(array, quality=80)   # array: (H, W, S) numpy, params keyword-only
    out = codec.decode(data)                 # -> (H, W, S) numpy array

Arrays are always three-dimensional ``(height, width, bands)`` inside recodec;
``encode`` also accepts a 2-D array and treats it as one band.  Every failure is
a :class:`recodec.errors.CodecError` (or a subclass), never a library-specific
exception, so the pipeline can turn it into a ``failed`` manifest row.

Codecs know nothing of Prefect, Ray or object storage.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from recodec.errors import (
    CodecError,
    CodecUnavailableError,
    ConfigError,
    DecodeError,
    UnsupportedImageError,
    library_message,
)
from recodec.formats.image import as_hwc


@dataclass(frozen=True)
class Knob:
    """The main quality knob of a codec, in the codec's native units."""

    name: str
    low: float
    high: float
    default: float
    #: True when a larger value means higher quality (and more bytes), e.g. JPEG quality;
    #: False when it means lower quality, e.g. a JPEG XL distance or a LERC max error.
    higher_is_better: bool
    integer: bool
    description: str
    #: The value that means lossless, if the knob has one (e.g. psnr=0 for JPEG 2000).
    lossless_value: float | None = None
    #: True when ``--quality Q`` (1-100) maps straight onto this knob.
    quality_shortcut: bool = False
    #: True when the useful values span decades (a rate–distortion lambda): searched on a geometric grid.
    geometric: bool = False


@dataclass(frozen=True)
class Param:
    """A secondary keyword parameter of a codec (speed, effort, subsampling...)."""

    name: str
    type: type
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a codec can hold and what it writes."""

    dtypes: tuple[str, ...]
    min_bands: int = 1
    #: Largest band count accepted; ``None`` means any.
    max_bands: int | None = 4
    lossy: bool = True
    lossless: bool = False
    #: File extension of the codec's own format, with the dot.
    extension: str = ".bin"
    #: tifffile ``compression`` name used for the GeoTIFF container, or None if TIFF cannot hold it.
    tiff_compression: str | None = None
    #: The exact band counts accepted, when not every count in [min_bands, max_bands] is.
    band_counts: tuple[int, ...] | None = None

    def supports(self, dtype: np.dtype | str, bands: int) -> bool:
        """True when an image of this dtype and band count can be encoded."""
        if np.dtype(dtype).name not in self.dtypes:
            return False
        if self.band_counts is not None and bands not in self.band_counts:
            return False
        return bands >= self.min_bands and (self.max_bands is None or bands <= self.max_bands)

    def describe_bands(self) -> str:
        """Human-readable band range, e.g. '1-4', '1+' or '1,3'."""
        if self.band_counts is not None:
            return ",".join(str(b) for b in self.band_counts)
        if self.max_bands is None:
            return f"{self.min_bands}+"
        if self.max_bands == self.min_bands:
            return str(self.min_bands)
        return f"{self.min_bands}-{self.max_bands}"


def _coerce(value: Any, kind: type, name: str) -> Any:
    """Convert a CLI string (or any value) to the declared parameter type."""
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ConfigError(f"parameter {name!r} expects true/false, got {value!r}")
        try:
            return kind(float(text)) if kind is int else kind(text)
        except ValueError as exc:
            raise ConfigError(f"parameter {name!r} expects {kind.__name__}, got {value!r}") from exc
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


class Codec(abc.ABC):
    """Base class of every codec; subclasses fill the class attributes and two hooks."""

    name: ClassVar[str]
    #: One-line description shown by ``recodec codecs``.
    summary: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities]
    knob: ClassVar[Knob]
    params: ClassVar[tuple[Param, ...]] = ()
    #: The ``pip install 'recodec[extra]'`` that provides this codec's dependencies.
    extra: ClassVar[str] = "codecs"
    #: True when :meth:`decode` returns the same pixels on every machine: reconcile then proves the
    #: decode by ``decoded_sha256``; an inexact decoder is re-checked by its metrics within a tolerance.
    exact_decode: ClassVar[bool] = True
    #: True when the decoder may invent detail (GAN, diffusion, restoration): marked in the manifest,
    #: never chosen by ``--codec auto`` (docs/generative.md).
    generative: ClassVar[bool] = False

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self) -> None:
        """Import heavy dependencies (and models); called once per worker before first use.

        Raise :class:`CodecUnavailableError` when a dependency is missing.
        """

    def available(self) -> bool:
        """True when the codec's dependencies import on this machine."""
        try:
            self.load()
        except CodecError:  # a missing library, or missing/unverified model weights
            return False
        return True

    def version(self) -> str:
        """Version string of the underlying library, recorded in the manifest."""
        return "unknown"

    # -- parameters --------------------------------------------------------------------------

    def all_params(self) -> dict[str, Param]:
        """Every accepted keyword, the main knob included."""
        knob = Param(self.knob.name, int if self.knob.integer else float, self.knob.default,
                     self.knob.description)
        out = {knob.name: knob}
        out.update({p.name: p for p in self.params})
        return out

    def resolve_params(self, params: dict[str, Any] | None = None, *, quality: float | None = None) -> dict[str, Any]:
        """Validate and complete user parameters: coerce types, apply defaults, reject unknowns.

        ``quality`` is the CLI's 1-100 shortcut; it sets the main knob only for codecs whose knob
        is a 1-100 quality, and is an error elsewhere (so nobody silently gets the default).
        """
        params = dict(params or {})
        spec = self.all_params()
        unknown = sorted(set(params) - set(spec))
        if unknown:
            raise ConfigError(
                f"codec {self.name!r} has no parameter {', '.join(unknown)}; known: {', '.join(spec)}"
            )
        if quality is not None:
            if not self.knob.quality_shortcut:
                raise ConfigError(
                    f"codec {self.name!r} has no 1-100 quality; set its knob with --param {self.knob.name}=VALUE"
                )
            params.setdefault(self.knob.name, quality)
        resolved: dict[str, Any] = {}
        for name, p in spec.items():
            value = _coerce(params[name], p.type, name) if name in params else p.default
            if p.choices is not None and value not in p.choices:
                raise ConfigError(f"parameter {name!r} must be one of {p.choices}, got {value!r}")
            resolved[name] = value
        knob_value = resolved[self.knob.name]
        if knob_value is not None and not (
            self.knob.low <= knob_value <= self.knob.high or knob_value == self.knob.lossless_value
        ):
            raise ConfigError(
                f"{self.name} {self.knob.name}={knob_value} is outside [{self.knob.low}, {self.knob.high}]"
            )
        return resolved

    # -- encode / decode ---------------------------------------------------------------------

    def check_supported(self, array: np.ndarray) -> np.ndarray:
        """Return ``array`` as (H, W, S) or raise :class:`UnsupportedImageError`."""
        arr = as_hwc(array)
        if not self.capabilities.supports(arr.dtype, arr.shape[2]):
            raise UnsupportedImageError(
                f"codec {self.name!r} cannot hold {arr.dtype.name} with {arr.shape[2]} band(s); "
                f"it takes {', '.join(self.capabilities.dtypes)} with {self.capabilities.describe_bands()} bands"
            )
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise UnsupportedImageError(f"empty image of shape {arr.shape}")
        return arr

    def encode(self, array: np.ndarray, /, **params: Any) -> bytes:
        """Encode a (H, W[, S]) array; keyword params are the codec's knob and options."""
        arr = self.check_supported(array)
        self.load()
        resolved = self.resolve_params(params)
        try:
            return bytes(self._encode(np.ascontiguousarray(arr), resolved))
        except CodecError:
            raise
        except Exception as exc:  # library errors become our one error type
            raise CodecError(f"{self.name} encode failed: {library_message(exc)}") from exc

    def decode(self, data: bytes, /) -> np.ndarray:
        """Decode bytes written by :meth:`encode` into a (H, W, S) array."""
        if not data:
            raise DecodeError(f"{self.name}: empty input")
        self.load()
        try:
            out = self._decode(bytes(data))
        except CodecError:
            raise
        except Exception as exc:
            raise DecodeError(f"{self.name} decode failed: {library_message(exc)}") from exc
        return as_hwc(out)

    def sniff(self, data: bytes, /) -> bool:
        """True when ``data`` looks like this codec's own format (used by ``recodec decode``)."""
        return False

    def decoder_for(self, params: dict[str, Any]) -> "Codec":
        """The codec that decodes with ``params``' decode-time settings (generative decoders); else self."""
        return self

    def transcode(self, data: bytes, source_format: str, params: dict[str, Any]) -> bytes | None:
        """Losslessly re-code the source's own bitstream (e.g. JPEG -> JPEG XL), or None.

        Called by the pipeline before pixel encoding; ``params`` are resolved params.
        """
        return None

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """tifffile ``compressionargs`` for the GeoTIFF container, from resolved params."""
        return {}

    @abc.abstractmethod
    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        """Encode a validated, contiguous (H, W, S) array with resolved params."""

    @abc.abstractmethod
    def _decode(self, data: bytes) -> np.ndarray:
        """Decode bytes; may return (H, W) or (H, W, S)."""

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


_SEARCH_STATE: ContextVar[dict[Any, Any] | None] = ContextVar("recodec_search_state", default=None)


@contextmanager
def search_session() -> Iterator[None]:
    """Scope of one codec's target search: its trials may share state (an overfitted codec warm-starts)."""
    token = _SEARCH_STATE.set({})
    try:
        yield
    finally:
        _SEARCH_STATE.reset(token)


def search_state() -> dict[Any, Any] | None:
    """The scratch dict of the enclosing :func:`search_session`, or None outside a search."""
    return _SEARCH_STATE.get()


def require(module: str, codec: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`CodecUnavailableError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecUnavailableError(codec, extra, exc) from exc


__all__ = [
    "Capabilities", "Codec", "Knob", "Param", "as_hwc", "require", "search_session", "search_state",
]
