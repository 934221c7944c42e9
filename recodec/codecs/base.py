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
import json
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from recodec.errors import CodecError, CodecUnavailableError, ConfigError, DecodeError, UnsupportedImageError


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

    def supports(self, dtype: np.dtype | str, bands: int) -> bool:
        """True when an image of this dtype and band count can be encoded."""
        if np.dtype(dtype).name not in self.dtypes:
            return False
        return bands >= self.min_bands and (self.max_bands is None or bands <= self.max_bands)

    def describe_bands(self) -> str:
        """Human-readable band range, e.g. '1-4' or '1+'."""
        if self.max_bands is None:
            return f"{self.min_bands}+"
        if self.max_bands == self.min_bands:
            return str(self.min_bands)
        return f"{self.min_bands}-{self.max_bands}"


def as_hwc(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as (H, W, S): a 2-D array becomes one band."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        return arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise UnsupportedImageError(f"expected a (H, W) or (H, W, S) array, got shape {arr.shape}")
    return arr


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
            raise CodecError(f"{self.name} encode failed: {type(exc).__name__}: {exc}") from exc

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
            raise DecodeError(f"{self.name} decode failed: {type(exc).__name__}: {exc}") from exc
        return as_hwc(out)

    def sniff(self, data: bytes, /) -> bool:
        """True when ``data`` looks like this codec's own format (used by ``recodec decode``)."""
        return False

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


def require(module: str, codec: str, extra: str) -> Any:
    """Import ``module`` or raise :class:`CodecUnavailableError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecUnavailableError(codec, extra, exc) from exc


# -- band packs: self-describing groups of native streams --------------------------------------
#
# Formats such as JPEG, WebP or AVIF hold 1, 3 or 4 channels with colour semantics.  An image
# they cannot hold as one native stream (2 bands, 5+ bands, gray for WebP...) is coded as
# several native streams, each a group of bands, wrapped in a tiny container:
#
#     b"RCBP" | u8 version | u32 little-endian header length | UTF-8 JSON header | payloads
#
# The JSON header names the codec, the full (H, W, S) shape and dtype, and for each part its
# band count and byte size, so the decoder can undo the split without any side information.

BANDPACK_MAGIC = b"RCBP"
_BANDPACK_VERSION = 1
_BANDPACK_MAX_HEADER = 1 << 20


def band_groups(bands: int, native: frozenset[int] | set[int]) -> list[int]:
    """Split ``bands`` into native groups: one group if native, RGB + extra for 4, else one per band."""
    if bands in native:
        return [bands]
    if bands == 4 and 3 in native:
        # RGB + NIR / RGB + alpha: keep the colour bands together so the colour transform helps.
        return [3, 1]
    return [1] * bands


def is_band_pack(data: bytes, codec: str | None = None) -> bool:
    """True when ``data`` is a band pack (written by ``codec``, when given)."""
    if data[:4] != BANDPACK_MAGIC or len(data) < 9:
        return False
    if codec is None:
        return True
    try:
        return unpack_bands(data)[0].get("codec") == codec
    except DecodeError:
        return False


def pack_bands(codec: str, shape: tuple[int, ...], dtype: np.dtype | str,
               parts: list[tuple[dict[str, Any], bytes]]) -> bytes:
    """Wrap native streams (each with a metadata dict holding at least ``bands``) in a band pack."""
    header = {
        "codec": codec,
        "shape": [int(v) for v in shape],
        "dtype": np.dtype(dtype).name,
        "parts": [dict(meta, size=len(payload)) for meta, payload in parts],
    }
    blob = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([BANDPACK_MAGIC, bytes([_BANDPACK_VERSION]), len(blob).to_bytes(4, "little"), blob,
                     *(payload for _, payload in parts)])


def unpack_bands(data: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """Parse a band pack into its header and ``(part metadata, payload)`` pairs; DecodeError if corrupt."""
    if data[:4] != BANDPACK_MAGIC or len(data) < 9:
        raise DecodeError("not a recodec band pack")
    if data[4] != _BANDPACK_VERSION:
        raise DecodeError(f"unsupported band pack version {data[4]}")
    size = int.from_bytes(data[5:9], "little")
    if size > _BANDPACK_MAX_HEADER or 9 + size > len(data):
        raise DecodeError("band pack header is truncated or corrupt")
    try:
        header = json.loads(data[9:9 + size])
        shape = [int(v) for v in header["shape"]]
        np.dtype(header["dtype"])
        metas = [dict(m) for m in header["parts"]]
        sizes = [int(m["size"]) for m in metas]
        bands = [int(m["bands"]) for m in metas]
    except (ValueError, TypeError, KeyError) as exc:
        raise DecodeError(f"band pack header is corrupt: {exc}") from exc
    if len(shape) != 3 or sum(bands) != shape[2] or min(sizes, default=-1) < 0:
        raise DecodeError("band pack header is inconsistent")
    if 9 + size + sum(sizes) != len(data):
        raise DecodeError(f"band pack is truncated: expected {9 + size + sum(sizes)} bytes, got {len(data)}")
    parts, offset = [], 9 + size
    for meta, n in zip(metas, sizes):
        parts.append((meta, data[offset:offset + n]))
        offset += n
    return header, parts


def encode_grouped(codec: str, array: np.ndarray, native: frozenset[int] | set[int],
                   encode_part: Callable[[np.ndarray], bytes]) -> bytes:
    """Encode a (H, W, S) array as one native stream, or as a band pack of native groups."""
    groups = band_groups(array.shape[2], native)
    if array.shape[2] in native:
        return bytes(encode_part(array))
    parts, start = [], 0
    for k in groups:
        parts.append(({"bands": k}, bytes(encode_part(np.ascontiguousarray(array[:, :, start:start + k])))))
        start += k
    return pack_bands(codec, array.shape, array.dtype, parts)


def decode_grouped(codec: str, data: bytes, decode_part: Callable[[bytes], np.ndarray]) -> np.ndarray:
    """Decode what :func:`encode_grouped` wrote: a native stream or a band pack of them."""
    if data[:4] != BANDPACK_MAGIC:
        return as_hwc(decode_part(data))
    header, parts = unpack_bands(data)
    if header["codec"] != codec:
        raise DecodeError(f"band pack was written by {header['codec']!r}, not {codec!r}")
    height, width, _ = header["shape"]
    planes = []
    for meta, payload in parts:
        # A part may decode to more channels than it holds (WebP gray is stored as RGB).
        plane = as_hwc(decode_part(payload))[:, :, : int(meta["bands"])]
        if plane.shape != (height, width, int(meta["bands"])):
            raise DecodeError(f"band pack part decoded to {plane.shape}, expected "
                              f"{(height, width, int(meta['bands']))}")
        planes.append(plane)
    out = np.concatenate(planes, axis=2)
    if out.dtype.name != header["dtype"]:
        raise DecodeError(f"band pack decoded to {out.dtype.name}, expected {header['dtype']}")
    return out


__all__ = [
    "BANDPACK_MAGIC", "Capabilities", "Codec", "Knob", "Param", "as_hwc", "band_groups", "decode_grouped",
    "encode_grouped", "is_band_pack", "pack_bands", "require", "unpack_bands",
]
