"""JPEG-LS (ISO/IEC 14495-1, CharLS via imagecodecs): lossless and near-lossless with an exact max error.

Weinberger, Seroussi, Sapiro, "The LOCO-I lossless image compression algorithm: principles and
standardization into JPEG-LS", IEEE Trans. Image Processing 9(8), 2000.

Knob: ``max_error`` (E) in the data's own units; every decoded sample is within E of the source.
JPEG-LS near-lossless mode (NEAR = E) quantizes prediction residuals with step 2E+1 inside the
prediction loop, so the bound holds by construction.  0 (or ``lossless=True``) is bit-exact.
On integer data a fractional E is floored (the bound still holds).

CharLS only codes unsigned 8/16-bit samples, 1 band per stream or 3-4 bands interleaved, with
NEAR <= 127 on 8-bit and <= 255 on 16-bit samples (:data:`NEAR_LIMIT`; an 8-bit NEAR of 128-255
is accepted by the encoder but the stream does not decode).  A thin wrapper covers the rest,
per band::

    band ──► indices q (unsigned) ──► JPEG-LS (NEAR n) ──► q' ──► de-quantize ──► band'
      native   uint8/uint16, E <= limit:  q = x,                      n = E
      int      other integers, or E > limit:  q = (x - lo + E') // (2E'+1)   (E' = E - n... see below)
               and x' = clip(lo + q' * (2E'+1), lo, hi)            (int16 -> an offset by lo)
      float    float32, E > 0: q = round((x - lo) / s), s = 2 (E - ulp), NaN -> index 0
      bits     float32 lossless: the raw 32 bits
    indices wider than 16 bits are coded as two 16-bit planes (hi, lo), losslessly.

Samples equal to ``nodata`` (a parameter the pipeline fills from the image) and NaN get reserved
indices, coded losslessly, so they come back bit-exact rather than merely within E.

For the ``int`` path with E > 0 the indices are coded with a small NEAR n whenever that is
smaller: with E' = (E - n) // (2n + 1) the error is at most E' + n (2E' + 1) <= E.

Output: a bare JPEG-LS stream (``.jls``) when every band is ``native`` and the image is one band
or 3-4 bands interleaved; otherwise a recodec band pack whose part headers carry each band's
transform (``lo``, ``hi``, ``step``...), so the decoder needs no side information.  Bands are
coded separately or interleaved (3-4 bands), whichever is smaller.  TIFF has no JPEG-LS
compression that tifffile or GDAL write, so the GeoTIFF container is never used for this codec.
The stream signature (SOI, then SOF55) is ``JPEGLS`` in :mod:`recodec.formats.magic`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recodec.codecs.backed import LibraryCodec
from recodec.codecs.base import Capabilities, Knob, Param
from recodec.errors import DecodeError, UnsupportedImageError
from recodec.formats.bandpack import is_band_pack, pack_bands, unpack_bands
from recodec.formats.image import as_hwc
from recodec.formats.magic import is_format

#: Largest NEAR CharLS accepts (and decodes) per index sample type, measured (tests/codecs/test_jpegls.py).
NEAR_LIMIT: dict[str, int] = {"uint8": 127, "uint16": 255}
#: Index NEAR values tried on the pre-quantized path (0 = lossless index coding).
INDEX_NEARS: tuple[int, ...] = (0, 1)


# -- per-band transforms -------------------------------------------------------------------


def _index_dtype(qmax: int, near: int = 0) -> str | None:
    """Smallest CharLS sample type holding indices up to ``qmax`` at ``near``; None if none can."""
    for kind, top in (("uint8", 255), ("uint16", 65535)):
        if qmax <= top and near <= NEAR_LIMIT[kind]:
            return kind
    return None


def reserved_values(band: np.ndarray, nodata: float | None) -> list[float]:
    """Values kept bit-exact through reserved indices: NaN and ``nodata``, where the band holds them."""
    out: list[float] = []
    if band.dtype.kind == "f" and np.isnan(band).any():
        out.append(math.nan)
    if nodata is not None and not math.isnan(nodata) and (band == nodata).any():
        out.append(float(nodata))
    return out


def _reserve(band: np.ndarray, q: np.ndarray, fill: list[float]) -> np.ndarray:
    """Shift indices past the reserved ones and give each reserved value its index."""
    if not fill:
        return q
    q = q + len(fill)
    for index, value in enumerate(fill):
        q[np.isnan(band) if math.isnan(value) else band == value] = index
    return q


def _json_fill(fill: list[float]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in fill]


def _valid(band: np.ndarray, fill: list[float]) -> np.ndarray:
    keep = np.ones(band.shape, bool)
    for value in fill:
        keep &= ~(np.isnan(band) if math.isnan(value) else band == value)
    return band[keep]


def integer_plan(band: np.ndarray, bound: int, nodata: float | None = None
                 ) -> list[tuple[np.ndarray, dict[str, Any], int]]:
    """Candidate (indices, transform, index NEAR) codings of an integer band under max error ``bound``.

    uint8/uint16 within CharLS's NEAR limit: the samples themselves.  Otherwise the band is offset
    by its minimum (int16 -> uint16) and, for E > 0, pre-quantized with step 2E'+1 (see the module
    docstring); every candidate meets the bound, the caller keeps the smallest stream.  A band
    holding ``nodata`` takes the pre-quantized path with lossless indices, ``nodata`` on index 0.
    """
    fill = reserved_values(band, nodata)
    valid = _valid(band, fill)
    if valid.size == 0:
        return [(_reserve(band, np.zeros(band.shape, np.int64), fill),
                 {"mode": "int", "lo": 0, "hi": 0, "step": 1, "fill": _json_fill(fill)}, 0)]
    lo, hi = int(valid.min()), int(valid.max())
    offset = band.astype(np.int64) - lo
    kind = _index_dtype(hi - lo, bound)
    out: list[tuple[np.ndarray, dict[str, Any], int]] = []
    if fill:
        pass  # reserved indices must come back exactly: pre-quantized, lossless indices only
    elif band.dtype.name in NEAR_LIMIT and bound <= NEAR_LIMIT[band.dtype.name]:
        out.append((band, {"mode": "native"}, bound))
    elif kind is not None:
        out.append((offset, {"mode": "int", "lo": lo, "hi": hi, "step": 1}, bound))
    # Pre-quantized indices: measured 0-3% smaller than NEAR = E on Landsat bands, sometimes larger;
    # a small index NEAR is tried only when CharLS cannot take NEAR = E itself (two encodes at most).
    nears = (0,) if fill or out else INDEX_NEARS
    for near in nears if bound > 0 or fill else ():
        pre = (bound - near) // (2 * near + 1)
        if pre < 1 and not fill:
            continue
        step = 2 * pre + 1
        q = _reserve(band, (offset + pre) // step, fill)
        if near and _index_dtype(int(q.max()), near) is None:
            continue  # two-plane indices are coded losslessly only
        meta = {"mode": "int", "lo": lo, "hi": hi, "step": step}
        out.append((q, {**meta, "fill": _json_fill(fill)} if fill else meta, near))
    return out or [(offset, {"mode": "int", "lo": lo, "hi": hi, "step": 1}, 0)]


def float_plan(band: np.ndarray, bound: float, nodata: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """(indices, transform) of a float32 band: quantized to ``bound`` exactly, or its raw bits when 0."""
    if np.isinf(band).any():
        raise UnsupportedImageError("jpegls cannot hold infinite values")
    fill = reserved_values(band, nodata)
    finite = _valid(band, fill)
    if finite.size == 0 or bound <= 0:
        return band.view(np.uint32), {"mode": "bits"}
    lo, hi = float(finite.min()), float(finite.max())
    # float32 rounding of the reconstruction adds up to half an ulp: keep the grid that much inside.
    ulp = float(np.spacing(np.float32(max(abs(lo), abs(hi)))))
    step = 2.0 * (bound - ulp)
    if step <= 0 or (hi - lo) / step >= 2.0 ** 32 - 4:
        return band.view(np.uint32), {"mode": "bits"}
    q = np.rint((np.nan_to_num(band.astype(np.float64), nan=lo) - lo) / step).astype(np.int64)
    meta = {"mode": "float", "lo": lo, "hi": hi, "step": step}
    return _reserve(band, q, fill), {**meta, "fill": _json_fill(fill)} if fill else meta


def dequantize(q: np.ndarray, meta: dict[str, Any], dtype: np.dtype) -> np.ndarray:
    """Undo a band transform: indices (as decoded) back to samples of ``dtype``."""
    mode = meta["mode"]
    if mode == "native":
        return q.astype(dtype)
    if mode == "bits":
        return q.astype(np.uint32).view(np.float32)
    lo, hi, step = meta["lo"], meta["hi"], meta["step"]
    fill = [math.nan if v is None else float(v) for v in meta.get("fill", [])]
    shifted = q.astype(np.int64) - len(fill)
    if mode == "int":
        values = np.clip(lo + shifted * int(step), lo, hi).astype(dtype)
    else:
        values = np.clip(lo + shifted.astype(np.float64) * step, lo, hi).astype(np.float32)
    for index, value in enumerate(fill):
        values[q == index] = value
    return values


# -- index streams ---------------------------------------------------------------------------


def encode_indices(q: np.ndarray, near: int) -> tuple[bytes, dict[str, Any]]:
    """JPEG-LS-code a (H, W) or (H, W, 3|4) index array; indices over 16 bits become two planes."""
    import imagecodecs

    kind = _index_dtype(int(q.max()) if q.size else 0, near)
    if kind is not None:
        return bytes(imagecodecs.jpegls_encode(np.ascontiguousarray(q.astype(kind)), level=near)), {}
    if near:
        raise ValueError(f"indices up to {int(q.max())} cannot be coded with NEAR {near}")
    wide = q.astype(np.uint32)
    high = bytes(imagecodecs.jpegls_encode(np.ascontiguousarray((wide >> 16).astype(np.uint16)), level=0))
    low = bytes(imagecodecs.jpegls_encode(np.ascontiguousarray((wide & 0xFFFF).astype(np.uint16)), level=0))
    return high + low, {"split": len(high)}


def decode_stream(data: bytes) -> np.ndarray:
    """Decode one JPEG-LS stream, refusing a truncated one first.

    CharLS 2.4 takes tens of seconds to reject a stream cut short (measured: about 30 s for a
    48 x 40 image), but rejects the same stream at once when it ends in EOI; a stream recodec
    wrote always ends in EOI (FF D9), so one that does not is refused without decoding.
    """
    import imagecodecs

    if data[-2:] != b"\xff\xd9":
        raise DecodeError("jpegls: stream is truncated (no EOI marker at its end)")
    return np.asarray(imagecodecs.jpegls_decode(data))


def decode_indices(payload: bytes, meta: dict[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_indices`."""
    if "split" not in meta:
        return decode_stream(payload)
    split = int(meta["split"])
    if not 0 < split < len(payload):
        raise DecodeError("jpegls: corrupt two-plane part")
    high = decode_stream(payload[:split]).astype(np.uint32)
    low = decode_stream(payload[split:]).astype(np.uint32)
    if high.shape != low.shape:
        raise DecodeError("jpegls: index planes differ in shape")
    return (high << 16) | low


class JpegLsCodec(LibraryCodec):
    """JPEG-LS near-lossless with an exact max error on any integer or float32 raster."""

    name = "jpegls"
    summary = "JPEG-LS (CharLS), lossless / near-lossless with exact max error; wrapper for int16, float32, big E"
    capabilities = Capabilities(
        dtypes=("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32"),
        min_bands=1, max_bands=None, lossy=True, lossless=True, extension=".jls", tiff_compression=None,
    )
    knob = Knob(
        "max_error", 0.0, math.inf, 0.0, higher_is_better=False, integer=False,
        description="largest allowed |decoded - source| in data units (floored on integers); 0 = lossless",
        lossless_value=0.0,
    )
    params = (
        Param("lossless", bool, False, "force max_error = 0"),
        Param("nodata", float, None, "a value kept exactly (the pipeline passes the image's nodata)"),
        Param("interleave", str, "auto", "3-4 band images: 'auto' keeps the smaller of the two",
              choices=("auto", "separate", "interleaved")),
    )

    magic = "JPEGLS"

    def version(self) -> str:
        import imagecodecs

        return imagecodecs.jpegls_version()

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        bound = 0.0 if params["lossless"] else float(params["max_error"])
        planned = [self._plan_band(array[:, :, b], bound, params["nodata"]) for b in range(array.shape[2])]
        separate = [min((self._one_part(q, meta, near) for q, meta, near in cands), key=lambda p: len(p[1]))
                    for cands in planned]
        parts = separate
        if params["interleave"] != "separate" and array.shape[2] in (3, 4):
            joint = self._interleaved([cands[0] for cands in planned])
            if joint is not None and (params["interleave"] == "interleaved"
                                      or len(joint[1]) < sum(len(p) for _, p in separate)):
                parts = [joint]
        # A bare JPEG-LS stream any JPEG-LS reader opens, when it decodes to the source dtype as is
        # (uint16 data below 256 is coded on 8 bits: that needs the band pack's dtype).
        if len(parts) == 1 and all(m["mode"] == "native" for m in parts[0][0]["tf"]) \
                and parts[0][0]["bands"] == array.shape[2] and "split" not in parts[0][0] \
                and _index_dtype(int(array.max()), int(math.floor(bound))) == array.dtype.name:
            return parts[0][1]
        return pack_bands(self.name, array.shape, array.dtype, parts)

    @staticmethod
    def _plan_band(band: np.ndarray, bound: float, nodata: float | None
                   ) -> list[tuple[np.ndarray, dict[str, Any], int]]:
        if band.dtype.kind == "f":
            q, meta = float_plan(band, bound, nodata)
            return [(q, meta, 0)]
        return integer_plan(band, int(math.floor(bound)), nodata)

    @staticmethod
    def _one_part(q: np.ndarray, meta: dict[str, Any], near: int) -> tuple[dict[str, Any], bytes]:
        payload, extra = encode_indices(q, near)
        return {"bands": 1, "tf": [meta], **extra}, payload

    @staticmethod
    def _interleaved(plans: list[tuple[np.ndarray, dict[str, Any], int]]) -> tuple[dict[str, Any], bytes] | None:
        """One interleaved stream of all bands, when they share an index type and NEAR."""
        nears = {near for _, _, near in plans}
        if len(nears) != 1:
            return None
        near = nears.pop()
        kind = _index_dtype(max(int(q.max()) for q, _, _ in plans), near)
        if kind is None:
            return None
        payload, _ = encode_indices(np.stack([q.astype(kind) for q, _, _ in plans], axis=-1), near)
        return {"bands": len(plans), "tf": [meta for _, meta, _ in plans]}, payload

    def _decode(self, data: bytes) -> np.ndarray:
        if not is_band_pack(data):  # a bare JPEG-LS stream
            return decode_stream(data)
        header, parts = unpack_bands(data)
        if header["codec"] != self.name:
            raise DecodeError(f"band pack was written by {header['codec']!r}, not {self.name!r}")
        height, width, _ = header["shape"]
        dtype = np.dtype(header["dtype"])
        planes = []
        for meta, payload in parts:
            q = as_hwc(decode_indices(payload, meta))
            transforms = meta.get("tf", [])
            if q.shape != (height, width, int(meta["bands"])) or len(transforms) != q.shape[2]:
                raise DecodeError(f"jpegls part decoded to {q.shape}, expected {(height, width, meta['bands'])}")
            planes.extend(dequantize(q[:, :, b], tf, dtype) for b, tf in enumerate(transforms))
        out = np.stack(planes, axis=-1)
        if out.dtype != dtype:
            raise DecodeError(f"jpegls decoded {out.dtype}, expected {dtype}")
        return out

    def sniff(self, data: bytes, /) -> bool:
        return is_format("JPEGLS", data) or is_band_pack(data, self.name)
