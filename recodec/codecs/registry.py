"""One registry of codecs by name (the fsspec / CompressAI pattern).

Built-in codecs are listed as ``"module:Class"`` strings so that importing the
registry imports no codec library; a codec's module is imported the first time
the codec is asked for.  Third-party packages register through the entry-point
group ``recodec.codecs`` (``name = "package.module:CodecClass"``) or at run time
with :func:`register`.
"""

from __future__ import annotations

import importlib
import threading
from importlib.metadata import entry_points
from typing import Callable, Union

from recodec.codecs.base import Codec
from recodec.errors import UnknownCodecError

ENTRY_POINT_GROUP = "recodec.codecs"

CodecFactory = Union[str, Callable[[], Codec], type[Codec]]

_BUILTIN: dict[str, str] = {
    "jpeg": "recodec.codecs.jpeg:JpegCodec",
    "webp": "recodec.codecs.webp:WebpCodec",
    "avif": "recodec.codecs.avif:AvifCodec",
    "jxl": "recodec.codecs.jxl:JxlCodec",
    "jpeg2000": "recodec.codecs.jpeg2000:Jpeg2000Codec",
    "htj2k": "recodec.codecs.jpeg2000:Htj2kCodec",
    "lerc": "recodec.codecs.lerc:LercCodec",
    "jpegls": "recodec.codecs.jpegls:JpegLsCodec",
    "residual": "recodec.codecs.residual:ResidualCodec",
    "png": "recodec.codecs.lossless:PngCodec",
    "zstd-tiff": "recodec.codecs.lossless:ZstdTiffCodec",
    "factorized": "recodec.codecs.learned:FactorizedCodec",
    "hyperprior": "recodec.codecs.learned:HyperpriorCodec",
    "rnn": "recodec.codecs.rnn.codec:RnnCodec",
    "overfit": "recodec.codecs.overfit:OverfitCodec",
    "jpeg-restore": "recodec.codecs.generative.codecs:JpegRestoreCodec",
    "hyperprior-diffusion": "recodec.codecs.generative.codecs:HyperpriorDiffusionCodec",
    "hyperprior-gan": "recodec.codecs.generative.codecs:HyperpriorGanCodec",
}

#: Candidates of ``--codec auto``, in order of preference for ties: the lossy classical codecs and the
#: learned ``hyperprior`` and ``factorized``, which beat libjpeg-turbo 4:2:0 on held-out photos since
#: session 15 (-17.7 % and -10.8 % BD-rate, docs/learned.md; 8-bit RGB and gray only: their
#: capabilities skip other inputs).  ``rnn`` does not beat JPEG and stays out; name it to try it.
AUTO_CODECS: tuple[str, ...] = ("jxl", "avif", "webp", "jpeg", "hyperprior", "factorized", "jpeg2000", "lerc")
#: Added to ``auto`` under a max_abs_error target: the codecs that meet an error bound by construction.
BOUNDED_AUTO_CODECS: tuple[str, ...] = ("jpegls", "residual")

_factories: dict[str, CodecFactory] = dict(_BUILTIN)
_instances: dict[str, Codec] = {}
_lock = threading.Lock()
_entry_points_loaded = False


def register(name: str, factory: CodecFactory, *, replace: bool = False) -> None:
    """Register a codec class, zero-argument factory or ``"module:Class"`` path under ``name``."""
    _load_entry_points()
    with _lock:
        if name in _factories and not replace:
            raise ValueError(f"codec {name!r} is already registered (pass replace=True)")
        _factories[name] = factory
        _instances.pop(name, None)


def unregister(name: str) -> None:
    """Remove a codec from the registry (mostly for tests)."""
    with _lock:
        _factories.pop(name, None)
        _instances.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        # Built-ins win so a stray plugin cannot silently replace e.g. "jpeg".
        _factories.setdefault(ep.name, ep.value)


def _build(name: str, factory: CodecFactory) -> Codec:
    if isinstance(factory, str):
        module_name, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
    codec = factory()
    if not isinstance(codec, Codec):
        raise TypeError(f"codec factory for {name!r} returned {type(codec).__name__}, not a Codec")
    return codec


def get_codec(name: str) -> Codec:
    """Return the (per-process, shared) codec instance registered under ``name``.

    ``name`` may also be a ``"package.module:CodecClass"`` path, which needs no registration
    (handy for private codecs on a cluster where the module is installed on every node).
    """
    _load_entry_points()
    with _lock:
        if name in _instances:
            return _instances[name]
        try:
            factory = _factories[name] if ":" not in name else name
        except KeyError:
            raise UnknownCodecError(
                f"unknown codec {name!r}; known: {', '.join(sorted(_factories))}"
            ) from None
    try:
        codec = _build(name, factory)
    except (ImportError, AttributeError) as exc:
        raise UnknownCodecError(f"cannot load codec {name!r}: {exc}") from exc
    with _lock:
        return _instances.setdefault(name, codec)


def list_codecs() -> list[str]:
    """Names of every registered codec, built-in and plugin, sorted."""
    _load_entry_points()
    return sorted(_factories)


def detect_codec(data: bytes) -> Codec | None:
    """The registered codec whose :meth:`Codec.sniff` recognises ``data``, if any."""
    for name in list_codecs():
        try:
            codec = get_codec(name)
        except Exception:  # an unimportable plugin must not break detection of the others
            continue
        if codec.sniff(data):
            return codec
    return None


def expand_codecs(spec: str, *, bounded: bool = False) -> list[str]:
    """Codec names of a ``--codec`` value: one name, ``auto``, or a comma-separated list.

    ``auto`` keeps only the :data:`AUTO_CODECS` whose dependencies are installed, plus the
    :data:`BOUNDED_AUTO_CODECS` when ``bounded`` (the target bounds max_abs_error); never a
    generative codec.
    """
    if spec.strip() == "auto":
        names = AUTO_CODECS + (BOUNDED_AUTO_CODECS if bounded else ())
        # A generative decoder may invent detail: only ever used when named (docs/generative.md).
        return [name for name in names if not get_codec(name).generative and get_codec(name).available()]
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UnknownCodecError("no codec given")
    for name in names:
        get_codec(name)  # unknown names fail here, before any work
    return list(dict.fromkeys(names))
