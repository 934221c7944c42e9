"""Hostile and content-bearing source files for the content tests, all built at test time.

Each builder returns the bytes of one file of an attack class in docs/reliability.md ("Content
attacks"): corrupt-but-decodable JPEGs, implausible headers, band bombs, multi-frame files,
EXIF orientation, MINISWHITE/palette/CMYK photometrics, ICC profiles, nodata and alpha rasters.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import tifffile


def photo(height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth RGB uint8 image with texture (compresses like a photo, every orientation distinct)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256], axis=-1)
    return np.clip(base + rng.integers(-8, 9, base.shape), 0, 255).astype(np.uint8)


def jpeg_bytes(array: np.ndarray, **options: object) -> bytes:
    """A JPEG of ``array`` written by Pillow (``exif=``, ``icc_profile=`` pass through)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", **{"quality": 90, **options})
    return buf.getvalue()


def truncated_jpeg(data: bytes) -> bytes:
    """The first half of a JPEG with an end-of-image marker appended (decodes to gray padding)."""
    return data[:len(data) // 2] + b"\xff\xd9"


def damaged_scan_jpeg(data: bytes, seed: int = 4) -> bytes:
    """A JPEG with 32 bytes of its entropy-coded scan zeroed (decodes, with a libjpeg warning).

    Not every damage is visible to libjpeg: a random single bit flip in the scan gives a warning
    about 15% of the time (docs/reliability.md); this seed gives one.
    """
    rng = np.random.default_rng(seed)
    sos = data.find(b"\xff\xda")
    pos = int(rng.integers(sos + 40, len(data) - 80))
    return data[:pos] + bytes(32) + data[pos + 32:]


def extraneous_jpeg(data: bytes) -> bytes:
    """A JPEG with stray bytes before its scan marker ("extraneous bytes before marker 0xda")."""
    sos = data.find(b"\xff\xda")
    return data[:sos] + b"\x00\x17\x2a" + data[sos:]


def jpeg_claiming(height: int, width: int) -> bytes:
    """A ~600-byte JPEG of 16x16 pixels whose frame header claims ``width`` x ``height``."""
    data = bytearray(jpeg_bytes(photo(16, 16)))
    sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(array: np.ndarray) -> bytes:
    """A PNG of a (H, W[, S]) uint8 array."""
    import imagecodecs

    return bytes(imagecodecs.png_encode(np.ascontiguousarray(array)))


def png_with(data: bytes, *chunks: bytes) -> bytes:
    """A PNG with extra chunks inserted after IHDR."""
    return data[:33] + b"".join(chunks) + data[33:]


def png_claiming(height: int, width: int) -> bytes:
    """A small RGB PNG whose IHDR claims ``width`` x ``height`` (CRC fixed)."""
    data = bytearray(png_bytes(photo(16, 16)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def apng_bytes(frames: list[np.ndarray]) -> bytes:
    """An animated PNG (Pillow ``save_all``)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frames[0]).save(buf, "PNG", save_all=True, append_images=[Image.fromarray(f) for f in frames[1:]])
    return buf.getvalue()


def animated_webp(frames: list[np.ndarray]) -> bytes:
    """An animated lossless WebP."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frames[0]).save(buf, "WEBP", save_all=True, lossless=True,
                                    append_images=[Image.fromarray(f) for f in frames[1:]])
    return buf.getvalue()


def multipage_tiff(pages: list[np.ndarray]) -> bytes:
    """A TIFF with one full-resolution page per array."""
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        for page in pages:
            tif.write(page, photometric="rgb", metadata=None, software=False)
    return buf.getvalue()


def tiff_with_overview(array: np.ndarray) -> bytes:
    """A TIFF with a reduced-resolution subfile (an overview, not a second page)."""
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        tif.write(array, photometric="rgb", metadata=None, software=False)
        tif.write(array[::2, ::2], photometric="rgb", subfiletype=1, metadata=None, software=False)
    return buf.getvalue()


def exif_block(orientation: int) -> bytes:
    """A minimal little-endian EXIF (TIFF-structured) block holding only Orientation."""
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0))


def oriented_jpeg(array: np.ndarray, orientation: int) -> bytes:
    """A JPEG (4:4:4, q100) stored as ``array`` with an EXIF orientation tag."""
    return jpeg_bytes(array, exif=b"Exif\x00\x00" + exif_block(orientation), subsampling=0, quality=100)


def oriented_png(array: np.ndarray, orientation: int) -> bytes:
    """A PNG stored as ``array`` with an eXIf chunk holding ``orientation``."""
    return png_with(png_bytes(array), png_chunk(b"eXIf", exif_block(orientation)))


def tiff_bytes(array: np.ndarray, **kwargs: object) -> bytes:
    """A TIFF of ``array`` (tifffile keywords pass through)."""
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, metadata=None, **{"software": False, **kwargs})
    return buf.getvalue()


def truncated_tiff(array: np.ndarray) -> bytes:
    """An uncompressed, single-strip TIFF cut inside its pixel data."""
    data = tiff_bytes(array, photometric="minisblack")
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        offset = tif.pages.first.dataoffsets[0]
    return data[:offset + (len(data) - offset) // 2]


def band_bomb_tiff(height: int = 1000, width: int = 1000, bands: int = 3000) -> bytes:
    """A ~3 KB deflate TIFF header claiming ``width`` x ``height`` x ``bands`` uint16 samples."""
    strip = zlib.compress(b"\x00" * 1024)
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 16), (259, 3, 1, 8), (262, 3, 1, 1),
        (273, 4, 1, 0), (277, 3, 1, bands), (278, 4, 1, height), (279, 4, 1, len(strip)), (284, 3, 1, 1),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    body = b""
    for tag, kind, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        body += struct.pack("<HHI", tag, kind, count) + packed
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)) + body + b"\x00" * 4 + strip


def cmyk_jpeg(array: np.ndarray) -> bytes:
    """A CMYK JPEG (Adobe APP14)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


def srgb_profile() -> bytes:
    """Pillow's built-in sRGB ICC profile."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def wide_gamut_profile() -> bytes:
    """A non-sRGB ICC profile (Pillow's built-in Lab identity stands in for Adobe RGB / P3)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def masked_raster(dtype: str = "uint16", bands: int = 3, nodata: float = 0, height: int = 64,
                  width: int = 80, seed: int = 0) -> np.ndarray:
    """A textured raster with a nodata border and holes, and valid samples right next to nodata."""
    rng = np.random.default_rng(seed)
    top = 4000 if dtype == "uint16" else 250
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([(x * 37 + y * 11 + 97 * b) % top for b in range(bands)], axis=-1).astype(np.float64)
    arr += rng.normal(0, top / 40, arr.shape)
    arr = np.clip(arr, 1, top).astype(dtype)
    arr[arr == nodata] = nodata + 1
    arr[:, : width // 5] = nodata            # a nodata border (scene edge)
    arr[height // 3: height // 2, width // 2: width // 2 + 9] = nodata  # a hole
    arr[:, width // 5] = nodata + 1          # valid samples one step from nodata, where codecs ring
    return arr


def damaged_jpeg_tile_tiff(array: np.ndarray) -> bytes:
    """A JPEG-compressed tiled TIFF with the end of one tile's scan zeroed (tifffile decodes it silently)."""
    data = bytearray(tiff_bytes(array, photometric="rgb", compression="jpeg", tile=(64, 64)))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        offset, count = tif.pages.first.dataoffsets[3], tif.pages.first.databytecounts[3]
    data[offset + count // 3:offset + count - 2] = bytes(count - 2 - count // 3)
    return bytes(data)
