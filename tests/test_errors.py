"""Tests of recodec.errors: one family, reasons first in the message."""

from recodec.errors import (
    CodecError,
    CodecUnavailableError,
    DecodeError,
    ImageTooLargeError,
    RecodecError,
    UnsupportedImageError,
)


def test_reason_prefixes_message_and_family() -> None:
    assert str(DecodeError("bad crc")) == "decode_error: bad crc"
    assert str(DecodeError("x", reason="roundtrip_mismatch")).startswith("roundtrip_mismatch:")
    for cls in (UnsupportedImageError, DecodeError, ImageTooLargeError, CodecUnavailableError):
        assert issubclass(cls, CodecError) and issubclass(cls, RecodecError)


def test_unavailable_names_the_extra() -> None:
    err = CodecUnavailableError("hyperprior", "learned", ImportError("no constriction"))
    assert "pip install 'recodec[learned]'" in str(err) and err.extra == "learned"
