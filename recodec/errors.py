"""Error types shared by every layer of recodec.

Codecs raise exactly one family, :class:`CodecError`, so callers can catch one
type (the imagecodecs convention).  The pipeline turns any of them into a
``failed`` manifest row whose ``error`` column starts with the ``reason`` code.
"""

from __future__ import annotations

from typing import Any


class RecodecError(Exception):
    """Base class of every error recodec raises on purpose."""

    #: Short machine-readable reason written to the manifest ``error`` column.
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:  # "reason: message" is what lands in the manifest
        return f"{self.reason}: {super().__str__()}"


class CodecError(RecodecError):
    """Encoding or decoding failed, or the data is not valid for the codec."""

    reason = "codec_error"


class UnsupportedImageError(CodecError):
    """The codec cannot hold this dtype / band layout / format."""

    reason = "unsupported"


class DecodeError(CodecError):
    """Input bytes are corrupt, truncated or not an image of an allowed format."""

    reason = "decode_error"


class ImageTooLargeError(DecodeError):
    """The image header declares more pixels than the configured limit (decompression bomb guard)."""

    reason = "too_large"


class CodecUnavailableError(CodecError):
    """An optional dependency needed by a codec is not installed."""

    reason = "codec_unavailable"

    def __init__(self, codec: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause else ""
        super().__init__(
            f"codec {codec!r} needs optional dependencies: pip install 'recodec[{extra}]'{detail}"
        )
        self.codec = codec
        self.extra = extra


class UnknownCodecError(RecodecError):
    """No codec is registered under the requested name."""

    reason = "unknown_codec"


class ConfigError(RecodecError):
    """A configuration value or CLI parameter is invalid."""

    reason = "config_error"


#: Failure reasons (the ``error`` column's prefix) that a later run may cure without any change to
#: the source or the job: lost workers, time-outs, memory, storage hiccups, our own bugs.  Reasons
#: that describe the image itself (``decode_error``, ``too_large``, ``unsupported``, ``unsafe_key``,
#: ``codec_error``, ``target_unreachable``...) fail the same way again and are never retried.
#: ``recodec run --retry-failed`` reprocesses rows whose latest status is failed with one of these.
RETRYABLE_REASONS: frozenset[str] = frozenset({
    "worker_lost", "timeout", "out_of_memory", "storage_error", "internal_error",
    "source_missing", "source_changed", "codec_unavailable", "roundtrip_mismatch",
})


def reason_of(error: str | None) -> str:
    """The reason code of a manifest ``error`` value (the text before the first colon)."""
    return (error or "").split(":", 1)[0].strip()


def is_retryable(error: str | None) -> bool:
    """Whether a failed row with this ``error`` may succeed when simply run again."""
    return reason_of(error) in RETRYABLE_REASONS


class LocationError(ConfigError):
    """SRC and DST overlap (same place, one inside the other), or SRC has nothing to process."""

    reason = "bad_location"


class StorageError(RecodecError):
    """DST (or SRC) cannot be used: missing bucket, read-only folder, no permission."""

    reason = "storage_error"


class UnsafeKeyError(RecodecError):
    """A source key could write outside the destination root."""

    reason = "unsafe_key"


class RowFailure(RecodecError):
    """A per-image failure whose reason is set by the pipeline itself (source_missing, timeout...)."""


class TargetUnreachable(RecodecError):
    """No candidate codec met the target; carries the search so the row can show how close it got."""

    reason = "target_unreachable"

    def __init__(self, result: Any, attempts: int, image: Any = None) -> None:
        detail = "; ".join(f"{name}: {why}" for name, why in result.reasons.items())
        super().__init__(detail or "no candidate could encode the image")
        self.result = result
        self.attempts = attempts
        #: The source image, so an unchanged source can still be copied and hashed.
        self.image = image


class WorkerTainted(RuntimeError):
    """An actor holds an abandoned (stuck) image thread and must be restarted before more work.

    Not a :class:`RecodecError`: it never becomes a row; the driver restarts the actor and
    resubmits the shard.
    """

    reason = "worker_tainted"


class CorruptSourceError(DecodeError):
    """The source decoded only with decoder warnings (premature end, corrupt scan, extraneous bytes)."""

    reason = "corrupt_source"


class ImplausibleHeaderError(DecodeError):
    """The header declares more pixels than the file could code at the format's best compression ratio."""

    reason = "implausible_header"


class MultiFrameError(UnsupportedImageError):
    """The source holds several frames or pages, and keeping only the first was not requested."""

    reason = "multiframe"


class ContentNotCarriedError(UnsupportedImageError):
    """Content a viewer uses (ICC profile, georeferencing...) cannot be carried into this output."""

    reason = "content_not_carried"


class MaskChangedError(CodecError):
    """The decoded output moved a nodata or alpha sample to another class (nodata/valid, alpha value)."""

    reason = "mask_changed"


def library_message(exc: BaseException) -> str:
    """``Type: message`` of a library exception, never an empty message (``PngError: ``)."""
    text = str(exc).strip()
    if isinstance(exc, UnicodeDecodeError):
        text = "the library reported an error whose message could not be read (corrupt stream)"
    return f"{type(exc).__name__}: {text or 'the library gave no message (corrupt or truncated stream)'}"


class TaskModelError(RecodecError):
    """The task model (``--task-model``) failed, or returned something of the wrong shape."""

    reason = "task_model_error"


class WriteRevoked(RecodecError):
    """The writer's right to publish an output was revoked (its image timed out)."""

    reason = "timeout"
