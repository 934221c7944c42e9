"""AVIF (AV1 intra) through imagecodecs' libavif, 8, 10 and 12 bits per sample.

Knob: ``quality`` 1-100 (higher is better; libavif quality, 100 with 4:4:4 is lossless), plus
``lossless``, ``speed`` (0 slowest/smallest .. 10 fastest) and ``subsampling`` (default 4:4:4:
libavif's and Pillow's 4:2:0 default caps PSNR on aerial scenes, wrong for an archive).

Bit depth: uint8 is coded at 8 bits.  uint16 is coded at 10 bits when every value is <= 1023,
else at 12 bits when every value is <= 4095 (``bitdepth=0``, automatic; or force 10 / 12).  A
uint16 image with values above what the chosen depth holds raises UnsupportedImageError: libavif
would silently clip them.  10/12-bit AVIF decodes to uint16 with the original values.

Bands: 1 and 3 are plain ``.avif`` files; 4 bands are a band pack of RGB + one gray stream,
other counts one gray stream per band (alpha planes are never used).  Gray is monochrome AV1:
imagecodecs codes a 2-D array losslessly whatever the quality, so lossy gray is passed as
R = G = B with pixelformat 4:0:0, which codes the one plane at the requested quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.errors import UnsupportedImageError
from recodec.formats.magic import is_format

_PIXELFORMAT = {"4:4:4": "444", "4:2:2": "422", "4:2:0": "420"}


def is_avif(data: bytes) -> bool:
    """True when ``data`` starts with an ISO-BMFF ftyp box of an AVIF brand."""
    return is_format("AVIF", data)


def avif_bitdepth(array: np.ndarray, requested: int = 0) -> int:
    """Bits per sample to code ``array`` with; UnsupportedImageError if values would be clipped."""
    if array.dtype == np.uint8:
        if requested not in (0, 8):
            raise UnsupportedImageError(f"avif: uint8 is coded at 8 bits, not {requested}")
        return 8
    top = int(array.max()) if array.size else 0
    depth = requested or (10 if top <= 1023 else 12)
    if depth not in (10, 12):
        raise UnsupportedImageError(f"avif: uint16 is coded at 10 or 12 bits, not {depth}")
    if top >= 1 << depth:
        raise UnsupportedImageError(
            f"avif holds at most {depth} bits per sample but the image reaches {top}; "
            "use jxl, jpeg2000 or lerc for full 16-bit data"
        )
    return depth


class AvifCodec(LibraryCodec):
    """AVIF via libavif (AV1 intra coding)."""

    name = "avif"
    summary = "AVIF (libavif via imagecodecs), AV1 intra, 8/10/12-bit"
    capabilities = Capabilities(
        dtypes=("uint8", "uint16"), min_bands=1, max_bands=None, lossy=True, lossless=True,
        extension=".avif", tiff_compression=None,
    )
    knob = Knob(
        "quality", 1, 100, 85, higher_is_better=True, integer=True,
        description="libavif quality 1-100 (maps onto the AV1 quantiser)",
        quality_shortcut=True,
    )
    params = (
        Param("lossless", bool, False, "lossless AV1 (quality 100, 4:4:4, identity matrix)"),
        Param("speed", int, 6, "encoder speed, 0 slowest/smallest .. 10 fastest", tuple(range(11))),
        Param("subsampling", str, "4:4:4", "chroma subsampling of RGB streams", tuple(_PIXELFORMAT)),
        Param("bitdepth", int, 0, "bits per sample for uint16: 0 = 10 or 12 from the data maximum",
              (0, 8, 10, 12)),
    )
    magic = "AVIF"
    native_bands = frozenset({1, 3})

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.avif_version()

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        # The bit depth is chosen once from the whole image, so every part of a band pack shares it.
        return super()._encode(array, {**params, "bitdepth": avif_bitdepth(array, int(params["bitdepth"]))})

    def _encode_part(self, part: np.ndarray, params: dict[str, Any]) -> bytes:
        import imagecodecs

        depth = int(params["bitdepth"])
        lossless = bool(params["lossless"])
        level = 100 if lossless else int(params["quality"])
        options = {"speed": int(params["speed"]), "bitspersample": None if depth == 8 else depth}
        if part.shape[2] == 3:
            subsampling = "4:4:4" if lossless else params["subsampling"]
            return imagecodecs.avif_encode(part, level, pixelformat=_PIXELFORMAT[subsampling], **options)
        if level >= 100:
            return imagecodecs.avif_encode(part[:, :, 0], level, **options)
        # imagecodecs codes a 2-D array losslessly whatever the quality; a gray image given
        # as R = G = B with pixelformat 4:0:0 is coded lossy as one monochrome plane.
        return imagecodecs.avif_encode(np.repeat(part, 3, axis=2), level, pixelformat="400", **options)

    def _decode_part(self, data: bytes) -> np.ndarray:
        import imagecodecs

        return imagecodecs.avif_decode(data)
