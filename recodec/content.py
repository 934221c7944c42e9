"""What a viewer shows besides the samples: frames, orientation, colour profile, photometric.

The source readers (:mod:`recodec.formats`) use these helpers so that no content is dropped
silently.  The policy, one rule per kind of content (docs/manifest.md#content):

- **Frames and pages** (APNG, animated WebP, multi-page TIFF): refused with ``multiframe``
  unless the run opts in with ``first_frame_only``; then the row records ``first_frame_of:N``.
  TIFF overviews (reduced-resolution subfiles) are not pages; a GDAL internal mask is content
  (kept in the GeoTIFF container, see :mod:`recodec.masks`).
- **Orientation** (EXIF in JPEG/PNG/WebP, TIFF tag 274): applied to the pixels, so every output
  displays as the source did without any tag (``orientation_applied:N``).
- **Photometric interpretation**: MINISWHITE is inverted to MINISBLACK (``miniswhite_inverted``),
  palettes are expanded (``palette_expanded``), YCbCr is converted to RGB by the decoder
  (``ycbcr_to_rgb``); CMYK and other ink or colorimetric spaces are refused (``cmyk``,
  ``unsupported_photometric``): converting them needs a colour-managed transform that would
  change the archived pixels.
- **ICC profile**: carried into the output where its format can hold one (``icc = "carried"``);
  an sRGB profile may be dropped, since viewers show untagged pixels as sRGB
  (``icc = "srgb_implied"``); any other profile the output cannot hold fails the row
  (``content_not_carried``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from recodec.errors import MultiFrameError
from recodec.formats.headers import webp_header
from recodec.formats.image import DEFAULT_MAX_PIXELS

#: Memory budget of one decoded source raster (width x height x bands x bytes per sample).  A
#: worker's peak is a multiple of it, dominated by the float metrics: measured 11-14x for 8-bit and
#: 6x for 16-bit rasters (benchmarks/memory_budget.py, docs/reliability.md#limits).
DEFAULT_MAX_IMAGE_BYTES = 1024**3
_MAX_ICC_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ReadOptions:
    """How the source reader treats limits, warnings and extra frames."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Largest decoded raster in bytes, checked from the header before decoding.
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: Keep the first frame/page of a multi-frame source instead of refusing it.
    first_frame_only: bool = False
    #: Accept sources whose decoder reported warnings (recorded in the row) instead of failing them.
    accept_warnings: bool = False


# -- EXIF orientation -----------------------------------------------------------------------

def exif_orientation(exif: bytes) -> int:
    """The Orientation (tag 0x0112) of a TIFF-structured EXIF block (``Exif\\0\\0`` optional); 1 if none."""
    if exif[:6] == b"Exif\x00\x00":
        exif = exif[6:]
    order = {b"II": "little", b"MM": "big"}.get(exif[:2])
    if order is None or len(exif) < 8:
        return 1
    ifd = int.from_bytes(exif[4:8], order)
    if ifd + 2 > len(exif):
        return 1
    for i in range(min(int.from_bytes(exif[ifd:ifd + 2], order), 1024)):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(exif):
            break
        if int.from_bytes(exif[entry:entry + 2], order) == 0x0112:
            value = int.from_bytes(exif[entry + 8:entry + 10], order)
            return value if 1 <= value <= 8 else 1
    return 1


def apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, S) pixels as a viewer shows them for an EXIF/TIFF orientation 1-8."""
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: a.transpose(1, 0, 2)[::-1],
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(array))


# -- container walkers ----------------------------------------------------------------------

@dataclass
class ContainerInfo:
    """What a source's container says beyond its samples."""

    frames: int = 1
    orientation: int = 1
    icc_profile: bytes | None = None
    #: Container-level problems (trailing bytes, size fields that disagree): decoder warnings.
    warnings: tuple[str, ...] = ()


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, payload length) of every chunk of a PNG, in order; stops at IEND."""
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
        chunks.append((kind, pos + 8, length))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def png_info(data: bytes) -> ContainerInfo:
    """Frames (APNG acTL), orientation (eXIf), ICC (iCCP) and trailing bytes of a PNG."""
    info, idat_seen, fctl_before_idat, frames = ContainerInfo(), False, False, 1
    warnings = []
    chunks = png_chunks(data)
    for kind, off, length in chunks:
        payload = data[off:off + length]
        if kind == b"acTL" and length >= 8:
            frames = int.from_bytes(payload[:4], "big")
        elif kind == b"fcTL" and not idat_seen:
            fctl_before_idat = True
        elif kind == b"IDAT":
            idat_seen = True
        elif kind == b"eXIf":
            info.orientation = exif_orientation(payload)
        elif kind == b"iCCP":
            info.icc_profile = _inflate_icc(payload.split(b"\x00", 1)[-1][1:])
    if any(kind == b"acTL" for kind, _, _ in chunks):
        # the default image is a frame only when an fcTL precedes IDAT; otherwise it is extra
        info.frames = max(frames, 1) + (0 if fctl_before_idat else 1)
    if chunks and chunks[-1][0] == b"IEND":
        end = chunks[-1][1] + chunks[-1][2] + 4
        if end < len(data):
            warnings.append(f"{len(data) - end} extraneous bytes after IEND")
    info.warnings = tuple(warnings)
    return info


def _inflate_icc(compressed: bytes) -> bytes | None:
    try:
        dec = zlib.decompressobj()
        out = dec.decompress(compressed, _MAX_ICC_BYTES)
        return out or None
    except zlib.error:
        return None


def jpeg_app_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of the JPEG segments before the first scan (APPn, SOFn, DQT...)."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        segments.append((marker, data[pos + 4:pos + 2 + length]))
        pos += 2 + length
    return segments


def jpeg_container_info(data: bytes) -> ContainerInfo:
    """Orientation (APP1 Exif) and ICC profile (APP2 ICC_PROFILE chunks) of a JPEG."""
    info, icc_parts = ContainerInfo(), {}
    for marker, payload in jpeg_app_segments(data):
        if marker == 0xE1 and payload[:6] == b"Exif\x00\x00" and info.orientation == 1:
            info.orientation = exif_orientation(payload)
        elif marker == 0xE2 and payload[:12] == b"ICC_PROFILE\x00" and len(payload) > 14:
            icc_parts[payload[12]] = payload[14:]
    if icc_parts:
        info.icc_profile = b"".join(icc_parts[k] for k in sorted(icc_parts))
    return info


def webp_info(data: bytes) -> ContainerInfo:
    """Frames (ANMF), orientation (EXIF), ICC (ICCP) and RIFF size problems of a WebP."""
    info, warnings = ContainerInfo(), []
    riff = int.from_bytes(data[4:8], "little") + 8
    if riff < len(data):
        warnings.append(f"{len(data) - riff} extraneous bytes after the RIFF chunk")
    elif riff > len(data):
        warnings.append(f"RIFF size says {riff} bytes, file has {len(data)} (truncated)")
    pos, frames = 12, 0
    while pos + 8 <= min(riff, len(data)):
        kind, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        payload = data[pos + 8:pos + 8 + size]
        if kind == b"ANMF":
            frames += 1
        elif kind == b"ICCP":
            info.icc_profile = bytes(payload) or None
        elif kind == b"EXIF":
            info.orientation = exif_orientation(payload)
        pos += 8 + size + (size & 1)
    info.frames = max(frames, 1)
    info.warnings = tuple(warnings)
    return info


# -- metadata that no output carries: recorded, never silently dropped ------------------------

# PNG chunks the reader uses or that only describe the coding; every other ancillary chunk is metadata.
_PNG_HANDLED = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"iCCP", b"acTL", b"fcTL", b"fdAT",
                          b"sBIT", b"sRGB"})
_JPEG_APP_KINDS = ((0xE1, b"Exif\x00", "exif"), (0xE1, b"http://ns.adobe.com/xap/", "xmp"),
                   (0xED, b"Photoshop 3.0", "iptc"), (0xFE, b"", "comment"))
#: TIFF tags that are metadata (not pixels, not georeferencing, not ICC) and their names.
TIFF_METADATA_TAGS = {270: "description", 305: "software", 306: "datetime", 315: "artist", 33432: "copyright",
                      700: "xmp", 33723: "iptc", 34665: "exif", 34853: "gps"}


def dropped_metadata(fmt: str, data: bytes, tiff_tags: Any = None) -> list[str]:
    """Kinds of metadata the source holds that outputs do not carry (EXIF, XMP, text, GPS...)."""
    kinds: list[str] = []
    if fmt == "JPEG":
        for marker, payload in jpeg_app_segments(data):
            kinds += [kind for m, prefix, kind in _JPEG_APP_KINDS if m == marker and payload.startswith(prefix)]
    elif fmt == "PNG":
        kinds += ["exif" if kind == b"eXIf" else f"png:{kind.decode('latin-1')}" for kind, _, _ in png_chunks(data)
                  if kind not in _PNG_HANDLED and kind[:1].islower()]
    elif fmt == "WEBP":
        kinds += [k for k, chunk in (("exif", b"EXIF"), ("xmp", b"XMP ")) if chunk in data[12:4096]]
    elif tiff_tags is not None:
        kinds += [name for code, name in TIFF_METADATA_TAGS.items() if code in tiff_tags]
    return sorted(set(kinds))


def pixels_as_stored(actions: list[str]) -> bool:
    """True when the reader left the stored pixels unchanged (it may only have noted dropped metadata)."""
    return all(action.startswith("metadata_dropped:") for action in actions)


def check_frames(frames: int, options: ReadOptions, what: str) -> str | None:
    """Refuse a multi-frame source unless ``first_frame_only``; the action to record, or None."""
    if frames <= 1:
        return None
    if not options.first_frame_only:
        raise MultiFrameError(
            f"{what} holds {frames} frames/pages; only the first would be kept (run with "
            f"--first-frame-only to accept that)")
    return f"first_frame_of:{frames}"


# -- ICC policy -----------------------------------------------------------------------------

def icc_description(profile: bytes) -> str:
    """The profile's 'desc' text (v2 textDescriptionType or v4 multiLocalizedUnicode), or ''."""
    if len(profile) < 132:
        return ""
    count = int.from_bytes(profile[128:132], "big")
    for i in range(min(count, 256)):
        entry = 132 + 12 * i
        if profile[entry:entry + 4] != b"desc":
            continue
        off = int.from_bytes(profile[entry + 4:entry + 8], "big")
        size = int.from_bytes(profile[entry + 8:entry + 12], "big")
        tag = profile[off:off + size]
        if tag[:4] == b"desc":
            n = int.from_bytes(tag[8:12], "big")
            return tag[12:12 + n].split(b"\x00")[0].decode("latin-1", "replace")
        if tag[:4] == b"mluc" and len(tag) >= 28:
            length, offset = int.from_bytes(tag[20:24], "big"), int.from_bytes(tag[24:28], "big")
            return tag[offset:offset + length].decode("utf-16-be", "replace")
    return ""


def is_srgb_profile(profile: bytes) -> bool:
    """True for a profile that describes sRGB (what viewers assume for untagged pixels)."""
    desc = icc_description(profile).lower().replace(" ", "")
    return "srgb" in desc and "linear" not in desc


__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES", "DEFAULT_MAX_PIXELS", "ContainerInfo", "ReadOptions", "TIFF_METADATA_TAGS",
    "apply_orientation", "check_frames", "dropped_metadata", "embed_icc", "exif_orientation", "icc_description",
    "is_srgb_profile", "jpeg_app_segments", "jpeg_container_info", "output_icc", "pixels_as_stored", "png_chunks", "png_info", "webp_info",
]


# -- ICC in outputs -------------------------------------------------------------------------

def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def embed_icc(payload: bytes, icc: bytes) -> bytes | None:
    """``payload`` with ``icc`` embedded (PNG iCCP, JPEG APP2, WebP ICCP); None if its format has no slot."""
    if payload[:8] == b"\x89PNG\r\n\x1a\n" and payload[12:16] == b"IHDR":
        ihdr_end = 8 + 12 + int.from_bytes(payload[8:12], "big")
        chunk = _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc, 9))
        return payload[:ihdr_end] + chunk + payload[ihdr_end:]
    if payload[:4] == b"RIFF" and payload[8:12] == b"WEBP":
        return _webp_with_icc(payload, icc)
    if payload[:3] == b"\xff\xd8\xff":
        pieces = [icc[i:i + 65519] for i in range(0, len(icc), 65519)]
        if len(pieces) > 255:
            return None
        segments = b"".join(
            b"\xff\xe2" + (len(p) + 16).to_bytes(2, "big") + b"ICC_PROFILE\x00" + bytes([i + 1, len(pieces)]) + p
            for i, p in enumerate(pieces))
        return payload[:2] + segments + payload[2:]
    return None


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + len(payload).to_bytes(4, "little") + payload + (b"\x00" if len(payload) & 1 else b"")


def _webp_with_icc(data: bytes, icc: bytes) -> bytes | None:
    """A WebP with an ICCP chunk: an extended (VP8X) file gets the ICC flag, a simple one a VP8X header."""
    first = data[12:16]
    body = data[12:]
    if first == b"VP8X":
        flags = bytes([data[20] | 0x20]) + data[21:30]
        out = _riff_chunk(b"VP8X", flags) + _riff_chunk(b"ICCP", icc) + body[18:]
    elif first in (b"VP8 ", b"VP8L"):
        height, width = webp_header(data)
        alpha = first == b"VP8L" and bool(int.from_bytes(data[21:25], "little") >> 28 & 1)
        header = bytes([0x20 | (0x10 if alpha else 0), 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (
            height - 1).to_bytes(3, "little")
        out = _riff_chunk(b"VP8X", header) + _riff_chunk(b"ICCP", icc) + body
    else:
        return None
    return b"RIFF" + (len(out) + 4).to_bytes(4, "little") + b"WEBP" + out


def output_icc(data: bytes) -> tuple[bool, bytes | None]:
    """(readable, profile) of an output: whether recodec can tell, and the ICC profile a viewer would use."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return True, png_info(data).icc_profile
    if data[:3] == b"\xff\xd8\xff":
        return True, jpeg_container_info(data).icc_profile
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True, webp_info(data).icc_profile
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        import io

        import tifffile

        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            tags = tif.pages.first.tags
            return True, bytes(tags[34675].value) if 34675 in tags else None
    return False, None
