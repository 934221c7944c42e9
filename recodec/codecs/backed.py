"""A shared base for codecs backed by Pillow or imagecodecs, so each declares only what differs.

A subclass declares its name, capabilities, knob and params as usual, plus:

- ``requires``: modules imported by :meth:`load` (a missing one -> CodecUnavailableError);
- ``magic``: its format's name in :data:`recodec.formats.magic.SIGNATURES` (for :meth:`sniff`);
- ``native_bands``: band counts one native stream holds; any other count is written as a band
  pack (:mod:`recodec.formats.bandpack`).  ``None`` means one stream holds any band count;

and implements :meth:`_encode_part` / :meth:`_decode_part` for one native stream::

    array --split by band_groups--> parts --_encode_part--> streams --pack_bands--> bytes
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np

from recodec.codecs.base import Codec, require
from recodec.formats.bandpack import decode_grouped, encode_grouped, is_band_pack
from recodec.formats.magic import is_format


class LibraryCodec(Codec):
    """Base of the Pillow- and imagecodecs-backed codecs: load, sniff and band-pack wiring."""

    requires: ClassVar[tuple[str, ...]] = ("imagecodecs",)
    magic: ClassVar[str | None] = None
    native_bands: ClassVar[frozenset[int] | None] = None

    def load(self) -> None:
        """Import the backing libraries (CodecUnavailableError names the extra when one is missing)."""
        for module in self.requires:
            require(module, self.name, self.extra)

    def sniff(self, data: bytes, /) -> bool:
        """True for this codec's own format, or a band pack it wrote."""
        if self.magic is not None and is_format(self.magic, data):
            return True
        return self.native_bands is not None and is_band_pack(data, self.name)

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        if self.native_bands is None:
            return bytes(self._encode_part(array, params))
        return encode_grouped(self.name, array, self.native_bands, lambda part: self._encode_part(part, params))

    def _decode(self, data: bytes) -> np.ndarray:
        if self.native_bands is None:
            return self._decode_part(data)
        return decode_grouped(self.name, data, self._decode_part)

    def _encode_part(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        """Encode one native stream of a (H, W, S) array, S in ``native_bands``."""
        raise NotImplementedError

    def _decode_part(self, data: bytes) -> np.ndarray:
        """Decode one native stream."""
        raise NotImplementedError


def pil_image(array: np.ndarray) -> Any:
    """A Pillow image from a (H, W, 1|3|4) uint8 array (one band becomes mode L)."""
    from PIL import Image

    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def pil_encode(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    """Encode a (H, W, 1|3|4) uint8 array with Pillow's ``fmt`` writer."""
    buf = io.BytesIO()
    pil_image(array).save(buf, format=fmt, **options)
    return buf.getvalue()

