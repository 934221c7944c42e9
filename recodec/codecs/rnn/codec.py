"""The ``rnn`` codec: recurrent progressive coding with an exact integer decoder.

Toderici et al., "Variable rate image compression with recurrent neural networks" (ICLR
2016) and "Full resolution image compression with recurrent neural networks" (CVPR 2017)::

    tile -> [E (float, ConvGRU) -> sign -> 32 bits / 16x16 block] -> context-coded chunk k
              ^ residual x - x_hat_{k-1}                |
              +---- x_hat_k = x_hat_{k-1} + D_int(b_k) <-+   (D_int: integer ConvGRU decoder)

K iterations, each adds ``bits`` binary codes per 16x16 block for the current residual,
plus one context-coded "apply" flag per block: the encoder keeps a block's update only if
it does not increase that block's error on the 8-bit output, so quality never falls with k.
The stream is iteration-major (:mod:`.bitstream`), so any cut after iteration k decodes to
the k-iteration image: :meth:`RnnCodec.decode_prefix`, ``recodec decode --iterations k``
or ``--max-bytes N``.  Decoding runs only integer arithmetic and integer tables, so the
pixels are the same in every process.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from recodec.codecs.base import Capabilities, Codec, Knob, Param, require
from recodec.codecs.rnn import bitstream
from recodec.codecs.weights import runtime_for
from recodec.errors import CodecError, DecodeError
from recodec.formats.magic import is_format

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "rnn.pt"
DEFAULT_TILE = 512
#: Environment variable choosing the device of the encoder and the integer decoder.
DEVICE_ENV = "RECODEC_LEARNED_DEVICE"
MAX_ITERATIONS = 8


class RnnCodec(Codec):
    """Recurrent progressive codec (Toderici et al. 2016/2017), see the module docstring."""

    name = "rnn"
    summary = "recurrent progressive learned codec (Toderici 2016/2017), exact integer decoder"
    capabilities = Capabilities(dtypes=("uint8",), min_bands=1, max_bands=3, lossy=True,
                                lossless=False, extension=".rcrn", tiff_compression=None)
    knob = Knob("iterations", 1, MAX_ITERATIONS, 4, higher_is_better=True, integer=True,
                description="iterations coded (each adds 32 bits per 16x16 block before entropy coding)",
                quality_shortcut=False)
    params = (
        Param("tile", int, DEFAULT_TILE, "tile edge in pixels; tiles are coded independently",
              (256, 512, 1024)),
    )
    extra = "learned"

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str | None = None) -> None:
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        self.device = device or os.environ.get(DEVICE_ENV, "cpu")
        self._rt: Any = None

    def load(self) -> None:
        """Import torch and constriction, verify and load the weights (once)."""
        if self._rt is None:
            require("torch", self.name, self.extra)
            require("constriction", self.name, self.extra)
            from recodec.codecs.rnn.runtime import load_runtime

            self._rt = load_runtime(self.weights, self.device)

    @property
    def runtime(self) -> Any:
        """The loaded :class:`~recodec.codecs.rnn.runtime.Runtime`."""
        self.load()
        return self._rt

    def runtime_for(self, sha256: bytes) -> Any:
        """The runtime of the weights a stream names: these, or older ones found by SHA-256."""
        from recodec.codecs.rnn.runtime import load_runtime

        return runtime_for(self.runtime, sha256, self.weights.parent, self.name,
                           lambda path, sha: load_runtime(path, self.device, expected=sha))

    def version(self) -> str:
        import torch

        return (f"recodec-rnn/{bitstream.FORMAT_VERSION} weights sha256:{self.runtime.sha256.hex()[:16]} "
                f"torch {torch.__version__}")

    def sniff(self, data: bytes, /) -> bool:
        return is_format("RNN", data)

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        from recodec.codecs.rnn.runtime import encode_tile

        rt = self.runtime
        k, tile = int(params["iterations"]), int(params["tile"])
        # Gray is coded as replicated RGB, two bands as (b0, b1, b1): the networks take 3 channels.
        rgb = array[:, :, [0, 0, 0] if array.shape[2] == 1 else [0, 1, 1] if array.shape[2] == 2 else [0, 1, 2]]
        h, w = rgb.shape[:2]
        per_tile = [encode_tile(rt, rgb[top:top + tile, left:left + tile], k)
                    for top in range(0, h, tile) for left in range(0, w, tile)]
        chunks = [bitstream.pack_chunk([p[i] for p in per_tile]) for i in range(k)]
        header = bitstream.Header(rt.sha256, array.shape[2], h, w, tile, k)
        return bitstream.pack(header, chunks)

    def _decode(self, data: bytes) -> np.ndarray:
        return self._decode_chunks(*bitstream.unpack(data))

    def decode_prefix(self, data: bytes, /, *, iterations: int | None = None,
                      max_bytes: int | None = None) -> np.ndarray:
        """Decode the first ``iterations`` (or as many as fit ``max_bytes``) of a possibly cut stream."""
        self.load()
        if max_bytes is not None:
            data = bitstream.cut_to_budget(data, max_bytes)
        header, chunks = bitstream.unpack(data, partial=True)
        if iterations is not None:
            if not 1 <= iterations <= len(chunks):
                raise DecodeError(f"rnn: {iterations} iterations asked, the stream holds {len(chunks)}")
            chunks = chunks[:iterations]
        try:
            return self._decode_chunks(header, chunks)
        except CodecError:
            raise
        except Exception as exc:
            raise DecodeError(f"rnn decode failed: {type(exc).__name__}: {exc}") from exc

    def decode_every_prefix(self, data: bytes, /) -> list[np.ndarray]:
        """The image after each iteration of a stream, in one decoding pass (progressive display)."""
        self.load()
        header, chunks = bitstream.unpack(data, partial=True)
        return [self._bands(header, img) for img in self._decode_rgb(header, chunks)]

    def _decode_chunks(self, header: bitstream.Header, chunks: list[list[bytes]]) -> np.ndarray:
        return self._bands(header, self._decode_rgb(header, chunks)[-1])

    def _decode_rgb(self, header: bitstream.Header, chunks: list[list[bytes]]) -> list[np.ndarray]:
        from recodec.codecs.rnn.runtime import decode_tile_prefixes

        rt = self.runtime_for(header.weights_sha256)
        if len(chunks) > rt.arch.iterations:
            raise DecodeError(f"rnn: {len(chunks)} iterations, the weights know {rt.arch.iterations}")
        out = [np.empty((header.height, header.width, 3), dtype=np.uint8) for _ in chunks]
        t, i = header.tile, 0
        for top in range(0, header.height, t):
            for left in range(0, header.width, t):
                th, tw = min(t, header.height - top), min(t, header.width - left)
                for img, tile in zip(out, decode_tile_prefixes(rt, [c[i] for c in chunks], th, tw)):
                    img[top:top + th, left:left + tw] = tile
                i += 1
        return out

    @staticmethod
    def _bands(header: bitstream.Header, out: np.ndarray) -> np.ndarray:
        """Undo the band replication of :meth:`_encode`."""
        if header.bands == 1:
            # Integer mean of the replicated channels: exact, so still bit-reproducible.
            return ((out.astype(np.uint16).sum(axis=2) + 1) // 3).astype(np.uint8)[:, :, None]
        if header.bands == 2:
            # Integer mean of the two copies of band 1: exact too.
            b1 = (out[:, :, 1].astype(np.uint16) + out[:, :, 2] + 1) // 2
            return np.stack([out[:, :, 0], b1.astype(np.uint8)], axis=2)
        return out


def decode_progressive(data: bytes, *, iterations: int | None = None, max_bytes: int | None = None) -> np.ndarray:
    """Decode a (possibly cut) ``rnn`` stream at ``iterations`` or within ``max_bytes``."""
    if not is_format("RNN", data):
        raise DecodeError("only progressive (rnn) streams can be decoded at fewer iterations or bytes")
    from recodec.codecs.registry import get_codec

    codec = get_codec("rnn")
    assert isinstance(codec, RnnCodec)
    return codec.decode_prefix(data, iterations=iterations, max_bytes=max_bytes)
