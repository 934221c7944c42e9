"""The nodata and alpha mask: kept exactly, checked on every output, fixed up losslessly when needed.

The rule (docs/manifest.md#masks): every nodata sample of the source stays nodata, no valid
sample takes the nodata value, every alpha sample keeps its exact value, and a GDAL internal
mask (TIFF subfile type 4) is kept bit for bit.  A lossy codec may break that (JPEG 2000 turned
nodata into valid values, LERC moved alpha 255 to 240), so:

- :func:`mask_changes` compares the source with what the decoder returned, and the pipeline
  fails the row with ``mask_changed`` when anything moved (reconcile re-checks it from the
  output alone against ``mask_sha256``);
- :func:`wrap_fixup` lets a raw output keep its lossy stream and still decode with the exact
  mask: it appends, losslessly (zstd), the nodata bitmap and the alpha band, and the decoder
  (:func:`unwrap_fixup`) puts nodata back where it was, moves valid samples that decoded to
  the nodata value one step away from it, and restores the alpha band::

      b"RCMK" | u8 version | u32 LE header length | JSON header | inner codec stream | zstd(fix-up)

  Such outputs get the ``.rcmk`` suffix (no viewer opens them; ``recodec decode`` does).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from recodec.errors import DecodeError, MaskChangedError

FIXUP_MAGIC = b"RCMK"
FIXUP_SUFFIX = ".rcmk"
_VERSION = 1


@dataclass(frozen=True)
class MaskSpec:
    """Where an image's mask lives: a nodata value, an alpha band, or both."""

    nodata: float | None = None
    alpha_band: int | None = None

    @property
    def active(self) -> bool:
        """True when there is a mask to keep."""
        return self.nodata is not None or self.alpha_band is not None


def nodata_samples(array: np.ndarray, nodata: float) -> np.ndarray:
    """(H, W, S) bool: samples equal to ``nodata`` (NaN matches NaN)."""
    if isinstance(nodata, float) and math.isnan(nodata):
        return np.isnan(array) if array.dtype.kind == "f" else np.zeros(array.shape, bool)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        if not (info.min <= nodata <= info.max) or not float(nodata).is_integer():
            return np.zeros(array.shape, bool)  # a nodata value the dtype cannot hold marks nothing
        return array == array.dtype.type(nodata)
    return array == nodata


def mask_sha256(array: np.ndarray, spec: MaskSpec, internal_mask: np.ndarray | None = None) -> str | None:
    """Hash of the mask classes: nodata bitmap, alpha samples, internal mask (None without any)."""
    if not spec.active and internal_mask is None:
        return None
    h = hashlib.sha256()
    if spec.nodata is not None:
        h.update(b"nodata")
        h.update(np.packbits(nodata_samples(array, spec.nodata)).tobytes())
    if spec.alpha_band is not None:
        h.update(b"alpha")
        h.update(np.ascontiguousarray(array[:, :, spec.alpha_band]).tobytes())
    if internal_mask is not None:
        h.update(b"internal")
        h.update(np.packbits(np.asarray(internal_mask, bool)).tobytes())
    return h.hexdigest()


def mask_changes(source: np.ndarray, decoded: np.ndarray, spec: MaskSpec) -> str | None:
    """What moved between the source's mask and the decoded one, or None when it is intact."""
    problems = []
    if spec.nodata is not None:
        src, dec = nodata_samples(source, spec.nodata), nodata_samples(decoded, spec.nodata)
        lost, gained = int((src & ~dec).sum()), int((~src & dec).sum())
        if lost:
            problems.append(f"{lost:,} nodata samples became valid")
        if gained:
            problems.append(f"{gained:,} valid samples took the nodata value {spec.nodata:g}")
    if spec.alpha_band is not None:
        a = source[:, :, spec.alpha_band].astype(np.float64)
        b = decoded[:, :, spec.alpha_band].astype(np.float64)
        moved = a != b
        if moved.any():
            problems.append(f"{int(moved.sum()):,} alpha samples changed (max |diff| {np.abs(a - b).max():g})")
    return "; ".join(problems) or None


def check_mask(source: np.ndarray, decoded: np.ndarray, spec: MaskSpec, what: str = "output") -> None:
    """Raise :class:`MaskChangedError` when the decoded mask differs from the source's."""
    problem = mask_changes(source, decoded, spec)
    if problem:
        raise MaskChangedError(f"{what}: {problem}")


# -- lossless fix-up wrapper ------------------------------------------------------------------

def _nudge(dtype: np.dtype, nodata: float) -> Any:
    """The value a valid sample that decoded to ``nodata`` is moved to: the nearest other value."""
    if dtype.kind in "iu":
        return dtype.type(nodata + 1 if nodata < np.iinfo(dtype).max else nodata - 1)
    if math.isnan(nodata):
        return dtype.type(0)  # a valid sample decoded as NaN: its value is unknown, 0 is finite
    return dtype.type(np.nextafter(dtype.type(nodata), dtype.type(np.inf)))


def wrap_fixup(inner: bytes, source: np.ndarray, spec: MaskSpec) -> bytes:
    """``inner`` plus the lossless data that restores ``source``'s mask after decoding."""
    import imagecodecs

    fix = []
    header: dict[str, Any] = {"inner": len(inner), "shape": list(source.shape), "dtype": source.dtype.name}
    if spec.nodata is not None:
        header["nodata"] = "nan" if math.isnan(spec.nodata) else spec.nodata
        fix.append(np.packbits(nodata_samples(source, spec.nodata)).tobytes())
    if spec.alpha_band is not None:
        header["alpha_band"] = spec.alpha_band
        fix.append(np.ascontiguousarray(source[:, :, spec.alpha_band]).tobytes())
    blob = bytes(imagecodecs.zstd_encode(b"".join(fix), level=19))
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return b"".join([FIXUP_MAGIC, bytes([_VERSION]), len(head).to_bytes(4, "little"), head, inner, blob])


def is_fixup(data: bytes) -> bool:
    """True for a stream written by :func:`wrap_fixup`."""
    return data[:4] == FIXUP_MAGIC


def unwrap_fixup(data: bytes, decode_inner: Callable[[bytes], np.ndarray]) -> np.ndarray:
    """Decode a fix-up stream: the inner codec's pixels with the source mask put back exactly."""
    import imagecodecs

    if not is_fixup(data) or len(data) < 9 or data[4] != _VERSION:
        raise DecodeError("not a recodec mask fix-up stream (or an unknown version)")
    size = int.from_bytes(data[5:9], "little")
    try:
        header = json.loads(data[9:9 + size])
        inner_end = 9 + size + int(header["inner"])
        shape, dtype = tuple(int(v) for v in header["shape"]), np.dtype(header["dtype"])
        fix = bytes(imagecodecs.zstd_decode(data[inner_end:]))
    except Exception as exc:
        raise DecodeError(f"mask fix-up stream is corrupt: {type(exc).__name__}: {exc}") from exc
    out = np.array(decode_inner(data[9 + size:inner_end]), copy=True)
    if out.shape != shape or out.dtype != dtype:
        raise DecodeError(f"mask fix-up: inner stream decoded to {out.dtype}{out.shape}, expected {dtype}{shape}")
    pos = 0
    if "nodata" in header:
        nodata = float(header["nodata"])
        n = -(-out.size // 8)
        bits = np.unpackbits(np.frombuffer(fix[pos:pos + n], np.uint8), count=out.size).reshape(shape).astype(bool)
        pos += n
        stray = ~bits & nodata_samples(out, nodata)
        out[stray] = _nudge(dtype, nodata)
        out[bits] = dtype.type(nodata)
    if "alpha_band" in header:
        band = int(header["alpha_band"])
        n = shape[0] * shape[1] * dtype.itemsize
        out[:, :, band] = np.frombuffer(fix[pos:pos + n], dtype).reshape(shape[:2])
        pos += n
    if pos != len(fix):
        raise DecodeError(f"mask fix-up data has {len(fix)} bytes, expected {pos}")
    return out


__all__ = [
    "FIXUP_MAGIC", "FIXUP_SUFFIX", "MaskSpec", "check_mask", "is_fixup", "mask_changes", "mask_sha256",
    "nodata_samples", "unwrap_fixup", "wrap_fixup",
]
