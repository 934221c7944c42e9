"""The one table of magic signatures: source sniffing and every codec's ``sniff`` agree with it."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs import get_codec
from recodec.formats.magic import SIGNATURES, identify, is_format
from recodec.formats.source import SOURCE_FORMATS, sniff_format

#: Codec -> the format name its own streams carry in :data:`SIGNATURES`.
CODEC_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF", "jxl": "JXL", "png": "PNG",
                 "zstd-tiff": "TIFF", "jpeg2000": "JP2", "htj2k": "J2K"}


@pytest.mark.parametrize("name, fmt", sorted(CODEC_FORMATS.items()))
def test_codec_output_is_identified_by_the_table(name: str, fmt: str) -> None:
    codec = get_codec(name)
    arr = np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    data = codec.encode(arr)
    assert is_format(fmt, data) and codec.sniff(data)
    if fmt in SOURCE_FORMATS:
        assert sniff_format(data) == fmt


def test_table_entries_do_not_overlap_on_their_own_signatures() -> None:
    samples = {"PNG": b"\x89PNG\r\n\x1a\n" + b"\0" * 8, "JPEG": b"\xff\xd8\xff\xe0" + b"\0" * 8,
               "TIFF": b"II*\x00" + b"\0" * 8, "WEBP": b"RIFF\0\0\0\0WEBPVP8 ", "LERC": b"Lerc2 " + b"\0" * 6}
    for fmt, data in samples.items():
        assert identify(data) == fmt
    assert identify(b"nothing here") is None and set(samples) <= set(SIGNATURES)
