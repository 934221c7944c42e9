"""Band packs: self-describing groups of native streams.

Formats such as JPEG, WebP or AVIF hold 1, 3 or 4 channels with colour semantics.  An image
they cannot hold as one native stream (2 bands, 5+ bands, gray for WebP...) is coded as
several native streams, each a group of bands, wrapped in a tiny container::

    b"RCBP" | u8 version | u32 little-endian header length | UTF-8 JSON header | payloads

The JSON header names the codec, the full (H, W, S) shape and dtype, and for each part its
band count and byte size, so the decoder can undo the split without any side information.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from recodec.errors import DecodeError
from recodec.formats.image import as_hwc
from recodec.formats.magic import BANDPACK_MAGIC, is_format

#: Suffix of raw outputs that are band packs (bands coded in groups), e.g. ``scene.jxl.rcbp``.
BANDPACK_SUFFIX = ".rcbp"
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
    if not is_format("BANDPACK", data):
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
