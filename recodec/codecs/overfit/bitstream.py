"""The ``overfit`` container: header, quantised network parameters, range-coded latents.

Layout (big-endian)::

    magic     4s  b"RCOF"
    version   B   FORMAT_VERSION
    dtype     B   0 = uint8, 1 = uint16, 2 = int16
    bands     B   1..16
    levels    B   latent levels (1..8)
    hidden    4B  widths of the synthesis MLP's hidden layers (0 = absent)
    convs     B   residual 3x3 convolutions (0..4)
    arm       B   hidden width of the context model
    height    I
    width     I
    low       i   sample value of normalised 0
    span      I   sample range of normalised 1
    crc       I   CRC-32 of the header before it and of the body
    body:     u32 length of the parameter block, the parameter block (signed exp-Golomb codes),
              range-coder words (little-endian uint32) of the latents

The file size, header included, is what bpp counts.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from recodec.codecs.overfit.exact import QLayer, QNet, check_layer, layer_shapes, split_layers
from recodec.codecs.overfit.network import Arch
from recodec.errors import DecodeError, ImageTooLargeError
from recodec.formats.magic import OVERFIT_MAGIC

FORMAT_VERSION = 1
DTYPES = ("uint8", "uint16", "int16")
_HEADER = struct.Struct(">4sBBBB4BBBIIiI")
_CRC = struct.Struct(">I")
HEADER_SIZE = _HEADER.size + _CRC.size
MAX_PIXELS = 400_000_000
MAX_HIDDEN, MAX_CONVS, MAX_LEVELS, MAX_ARM = 128, 4, 8, 64


@dataclass(frozen=True)
class Header:
    """Parsed container header."""

    dtype: str
    arch: Arch
    height: int
    width: int
    low: int
    span: int


class BitWriter:
    """Bits appended most significant first."""

    def __init__(self) -> None:
        self.value, self.count = 0, 0

    def write(self, value: int, bits: int) -> None:
        """Append the ``bits`` low bits of ``value``."""
        self.value = (self.value << bits) | (value & ((1 << bits) - 1))
        self.count += bits

    def signed(self, v: int, k: int) -> None:
        """Signed exp-Golomb code of order ``k`` (zig-zag mapped)."""
        u = 2 * v if v >= 0 else -2 * v - 1
        u += 1 << k
        n = u.bit_length()
        self.write(0, n - 1 - k)
        self.write(u, n)

    def getvalue(self) -> bytes:
        """The bits, zero-padded to whole bytes."""
        pad = -self.count % 8
        return (self.value << pad).to_bytes((self.count + pad) // 8, "big")


class BitReader:
    """Reads what :class:`BitWriter` wrote; running out of bits is a DecodeError."""

    def __init__(self, data: bytes) -> None:
        self.value, self.left = int.from_bytes(data, "big"), 8 * len(data)

    def read(self, bits: int) -> int:
        """The next ``bits`` bits as an unsigned integer."""
        if bits > self.left:
            raise DecodeError("overfit: parameter block is truncated")
        self.left -= bits
        return (self.value >> self.left) & ((1 << bits) - 1)

    def signed(self, k: int) -> int:
        """One signed exp-Golomb code of order ``k``."""
        zeros = 0
        while self.read(1) == 0:
            zeros += 1
            if zeros > 48:
                raise DecodeError("overfit: bad parameter code")
        u = ((1 << (zeros + k)) | self.read(zeros + k)) - (1 << k)
        return u >> 1 if u % 2 == 0 else -((u + 1) >> 1)


def _best_k(values: np.ndarray) -> int:
    """Exp-Golomb order with the shortest code for ``values``."""
    u = np.where(values >= 0, 2 * values, -2 * values - 1).astype(np.float64)
    costs = [float(np.sum(2 * np.floor(np.log2(u + 2.0**k)) - k + 1)) for k in range(24)]
    return int(np.argmin(costs))


def _write_layer(out: BitWriter, layer: QLayer) -> None:
    """One layer: wf, then weights and biases, each with its own exp-Golomb order."""
    out.signed(layer.wf, 2)
    for values in (layer.weight.ravel(), layer.bias.ravel()):
        k = _best_k(values)
        out.write(k, 5)
        for v in values.tolist():
            out.signed(int(v), k)


def layer_bits(layer: QLayer) -> int:
    """Bits that one layer takes in the parameter block."""
    out = BitWriter()
    _write_layer(out, layer)
    return out.count


def write_params(net: QNet) -> bytes:
    """Serialise every quantised layer, in stream order."""
    out = BitWriter()
    for layer in net.layers():
        _write_layer(out, layer)
    return out.getvalue()


def read_params(data: bytes, arch: Arch) -> QNet:
    """Inverse of :func:`write_params` for the layer shapes of ``arch``."""
    reader = BitReader(data)
    layers = []
    for shape in layer_shapes(arch):
        wf = reader.signed(2)
        arrays = []
        for size, dims in ((int(np.prod(shape)), shape), (shape[0], (shape[0],))):
            k = reader.read(5)
            arrays.append(np.array([reader.signed(k) for _ in range(size)], dtype=np.int64).reshape(dims))
        layer = QLayer(arrays[0], arrays[1], wf)
        if not check_layer(layer):
            raise DecodeError("overfit: a network layer is not provably exact")
        layers.append(layer)
    return split_layers(arch, layers)


def pack(header: Header, params: bytes, latents: bytes) -> bytes:
    """Serialise a header, the parameter block and the latent words."""
    a = header.arch
    hidden = list(a.hidden) + [0] * (4 - len(a.hidden))
    head = _HEADER.pack(OVERFIT_MAGIC, FORMAT_VERSION, DTYPES.index(header.dtype), a.bands, a.levels, *hidden,
                        a.convs, a.arm_hidden, header.height, header.width, header.low, header.span)
    body = struct.pack(">I", len(params)) + params + latents
    return head + _CRC.pack(zlib.crc32(body, zlib.crc32(head))) + body


def unpack(data: bytes) -> tuple[Header, bytes, bytes]:
    """Parse and validate a stream: (header, parameter block, latent words)."""
    if len(data) < HEADER_SIZE + 4:
        raise DecodeError(f"overfit: {len(data)} bytes is shorter than the header")
    fields = _HEADER.unpack_from(data)
    magic, version, dtype, bands, levels = fields[:5]
    hidden, (convs, arm, height, width, low, span) = fields[5:9], fields[9:]
    if magic != OVERFIT_MAGIC:
        raise DecodeError("overfit: bad magic bytes")
    if version != FORMAT_VERSION:
        raise DecodeError(f"overfit: unsupported format version {version}")
    (crc,) = _CRC.unpack_from(data, _HEADER.size)
    body = memoryview(data)[HEADER_SIZE:]
    if zlib.crc32(body, zlib.crc32(memoryview(data)[:_HEADER.size])) != crc:
        raise DecodeError("overfit: checksum mismatch (truncated or corrupt)")
    widths = tuple(h for h in hidden if h)
    if (dtype >= len(DTYPES) or not 1 <= bands <= 16 or not 1 <= levels <= MAX_LEVELS or convs > MAX_CONVS
            or not 1 <= arm <= MAX_ARM or any(h > MAX_HIDDEN for h in widths) or not height or not width
            or span < 1):
        raise DecodeError("overfit: invalid header")
    if height * width > MAX_PIXELS:
        raise ImageTooLargeError(f"overfit: header declares {height}x{width} pixels")
    (n,) = struct.unpack_from(">I", body)
    if 4 + n > len(body) or (len(body) - 4 - n) % 4:
        raise DecodeError("overfit: bad parameter block length")
    header = Header(DTYPES[dtype], Arch(levels, widths, convs, arm, bands), height, width, low, span)
    return header, bytes(body[4:4 + n]), bytes(body[4 + n:])
