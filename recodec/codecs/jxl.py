"""JPEG XL through imagecodecs' libjxl: lossy by butteraugli distance, lossless, and JPEG recompression.

Knob: ``distance`` (butteraugli distance, lower is better; 1.0 is "visually lossless", 0.01 is
the smallest lossy value, 0 means lossless), plus ``lossless`` and ``effort`` (1-10, default 7
as in libjxl's own tools; imagecodecs would default to 5).  For uint16 the distance is relative
to 16-bit full scale, so data that only fills 12 bits gets a coarser effective distance.

Bands: 1 (gray) and 3 (RGB, XYB when lossy) are plain ``.jxl`` files.  libjxl takes a 4-band
array as RGBA (and lossy mode drops colour under alpha = 0), and an (H, W, S > 4) array as
animation frames, so every other layout is a band pack: RGB + one gray stream for 4 bands, one
gray stream per band otherwise.  Measured on Landsat/NAIP crops, band-by-band lossy coding is
4-10x smaller than one planar stream with extra channels (libjxl barely quantises extra
channels), and within 1% of it when lossless.

JPEG recompression: :meth:`JxlCodec.transcode` turns a JPEG file into a JXL with JPEG
reconstruction data (``jbrd`` box), about 20% smaller.  Decoding such a file rebuilds the
original JPEG bytes exactly and decodes them with libjpeg-turbo, so the pixels equal those of
the source JPEG (libjxl's own pixel decode of it differs by up to a few levels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.errors import DecodeError
from recodec.formats.jpeg import decode_jpeg, jpeg_info
from recodec.formats.magic import JXL_CONTAINER, is_format


def is_jxl(data: bytes) -> bool:
    """True for a bare JPEG XL codestream or an ISO-BMFF JPEG XL container."""
    return is_format("JXL", data)


def has_jpeg_reconstruction(data: bytes) -> bool:
    """True when a JPEG XL container carries a ``jbrd`` box (it was made from a JPEG file)."""
    if data[:12] != JXL_CONTAINER:
        return False
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"jbrd":
            return True
        if size == 1 and pos + 16 <= len(data):  # 64-bit box size
            size = int.from_bytes(data[pos + 8:pos + 16], "big")
        if size == 0 or size < 8:  # box runs to the end of the file / corrupt
            return False
        pos += size
    return False


def decode_jxl(data: bytes) -> np.ndarray:
    """Decode one JPEG XL stream; a recompressed JPEG goes back through its exact JPEG bytes."""
    import imagecodecs

    if has_jpeg_reconstruction(data):
        return decode_jpeg(imagecodecs.jpegxl_decode_jpeg(data))
    out = imagecodecs.jpegxl_decode(data)
    if out.ndim == 4 or (out.ndim == 3 and out.shape[2] > 4):
        raise DecodeError(f"jxl: animated or planar stream of shape {out.shape} is not a recodec image")
    return out


class JxlCodec(LibraryCodec):
    """JPEG XL via libjxl."""

    name = "jxl"
    summary = "JPEG XL (libjxl via imagecodecs), lossy/lossless, lossless JPEG recompression"
    capabilities = Capabilities(
        dtypes=("uint8", "uint16"), min_bands=1, max_bands=None, lossy=True, lossless=True,
        extension=".jxl", tiff_compression="jpegxl",
    )
    knob = Knob(
        "distance", 0.01, 25.0, 1.0, higher_is_better=False, integer=False,
        description="butteraugli distance (1.0 ~ visually lossless; 16-bit full scale); 0 = lossless",
        lossless_value=0.0,
    )
    params = (
        Param("lossless", bool, False, "mathematically lossless (modular mode)"),
        Param("effort", int, 7, "encoder effort, 1 fastest .. 10 smallest", tuple(range(1, 11))),
    )
    magic = "JXL"
    native_bands = frozenset({1, 3})

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.jpegxl_version()

    @staticmethod
    def _is_lossless(params: dict[str, Any]) -> bool:
        return bool(params["lossless"]) or not params["distance"]

    def _options(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._is_lossless(params):
            return {"lossless": True, "effort": int(params["effort"])}
        return {"lossless": False, "distance": float(params["distance"]), "effort": int(params["effort"])}

    def tiff_compressionargs(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._options(params)

    def _encode_part(self, part: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        return imagecodecs.jpegxl_encode(part if part.shape[2] == 3 else part[:, :, 0], **self._options(params))

    def _decode_part(self, data: bytes) -> np.ndarray:
        return decode_jxl(data)

    def transcode(self, data: bytes, source_format: str, params: dict[str, Any]) -> bytes | None:
        """Recompress a JPEG file losslessly (bit-exact JPEG reconstruction); None for other sources."""
        if source_format.upper() not in {"JPEG", "JPG"}:
            return None
        self.load()
        import imagecodecs

        try:
            jpeg_info(data)  # refuse truncated/corrupt JPEGs before libjxl sees them
            out = imagecodecs.jpegxl_encode_jpeg(data, usecontainer=True)
            if imagecodecs.jpegxl_decode_jpeg(out) != data:
                return None
        except Exception:  # CMYK, arithmetic coding, 12-bit...: fall back to pixel coding
            return None
        return bytes(out)
