"""Error types shared by every layer of recodec.

Codecs raise exactly one family, :class:`CodecError`, so callers can catch one
type (the imagecodecs convention).  The pipeline turns any of them into a
``failed`` manifest row whose ``error`` column starts with the ``reason`` code.
"""

from __future__ import annotations


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
