"""Loaded weights of the ``rnn`` codec and the per-tile encode / decode loops.

Encoding runs the float encoder, but the residual it sees at each iteration is computed
from the *integer* decoder's reconstruction, so encoder and decoder agree exactly on
what the stream means; only the bits written need be reproducible, not the encoder.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recodec.codecs.learned.integer import layer_from_state
from recodec.codecs.rnn import context
from recodec.codecs.rnn.integer import RECON_FRAC, IntDecoder, IntGRU
from recodec.codecs.rnn.models import Arch, Encoder
from recodec.errors import CodecError

WEIGHTS_FORMAT = 1
#: Codes are produced per 16x16 block, so tiles are padded (edge replication) to 16.
BLOCK = 16


@dataclass
class Runtime:
    """Float encoder, integer decoder and context model of one weights file."""

    sha256: bytes
    arch: Arch
    encoder: Encoder
    decoder: IntDecoder
    context: context.ContextModel
    apply: np.ndarray
    device: str


def decoder_from_state(state: dict[str, torch.Tensor], device: str = "cpu") -> IntDecoder:
    """Build the integer decoder from the flat shipped state."""
    sig = state["lut.sigmoid"].to(device=device, dtype=torch.float64)
    tanh = state["lut.tanh"].to(device=device, dtype=torch.float64)

    def conv(name: str) -> Any:
        return layer_from_state(f"dec.{name}", state, device)

    def gru(name: str) -> IntGRU:
        return IntGRU(conv(f"{name}.wx"), conv(f"{name}.wh"), sig, tanh)

    return IntDecoder(conv("inp"), gru("g1"), gru("g2"), conv("c3"), conv("c4"), conv("out"))


def runtime_from_state(state: dict[str, torch.Tensor], sha256: bytes, device: str = "cpu") -> Runtime:
    """A runtime from a flat shipped state (used by the loader and by the export step)."""
    fmt, *dims = (int(v) for v in state["meta"])
    if fmt != WEIGHTS_FORMAT:
        raise CodecError(f"rnn: weights format {fmt}, expected {WEIGHTS_FORMAT}")
    arch = Arch(*dims)
    encoder = Encoder(arch)
    encoder.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("enc.")})
    encoder = encoder.to(device).eval()
    # Before the export has counted them, every apply-flag probability is 1/2.
    apply = (state["ctx.apply"].numpy().astype(np.int32) if "ctx.apply" in state
             else np.full(arch.iterations, context.PROB_ONE // 2, np.int32))
    return Runtime(sha256, arch, encoder, decoder_from_state(state, device),
                   context.model_from_state(state, arch.iterations, arch.bits), apply, device)


_RUNTIMES: dict[tuple[str, str], Runtime] = {}
_LOCK = threading.Lock()


def load_runtime(weights: Path, device: str = "cpu", *, expected: str | None = None) -> Runtime:
    """Check the SHA-256 (pinned, or ``expected``), ``torch.load(weights_only=True)``, build the runtime (cached)."""
    from recodec.codecs.weights import load_pinned

    key = (str(weights.resolve()), device)
    with _LOCK:
        if key not in _RUNTIMES:
            state, actual = load_pinned(weights, "rnn", expected=expected)
            _RUNTIMES[key] = runtime_from_state(state, bytes.fromhex(actual), device)
        return _RUNTIMES[key]


def _padded(tile: np.ndarray) -> np.ndarray:
    h, w = tile.shape[:2]
    return np.pad(tile, ((0, -h % BLOCK), (0, -w % BLOCK), (0, 0)), mode="edge")


def _block_sse(pixels: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per 16x16 block squared error of uint8 pixels over the tile's valid (unpadded) pixels."""
    err = (pixels.to(torch.float64) - target) ** 2 * valid
    return F.avg_pool2d(err.sum(0, keepdim=True)[None], BLOCK)[0, 0]


def _gate(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Keep ``new`` in the blocks where ``mask`` is 1, ``old`` elsewhere."""
    up = mask.repeat_interleave(BLOCK, 0).repeat_interleave(BLOCK, 1).to(torch.bool)
    return torch.where(up[None, None], new, old)


@torch.no_grad()
def encode_tile_bits(rt: Runtime, tile: np.ndarray, iterations: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per iteration: codes (bits, h/16, w/16) and apply flags (h/16, w/16), uint8 0/1.

    A block's update is applied only when it does not increase the block's squared error
    on the 8-bit output, so quality never falls with k, whatever the weights.
    """
    padded = _padded(tile)
    h, w = tile.shape[:2]
    x = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(rt.device)
    target = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float64)).to(rt.device)
    valid = torch.zeros(target.shape[1:], dtype=torch.float64, device=rt.device)
    valid[:h, :w] = 1
    recon = IntDecoder.initial(tuple(x.shape), rt.device)  # type: ignore[arg-type]
    es: list[Any] = [None, None]
    ds: list[Any] = [None, None]
    out = []
    for _ in range(iterations):
        residual = x - (recon / 2.0**RECON_FRAC).to(torch.float32)
        t, es = rt.encoder(residual, es)
        u = (t >= 0).to(torch.uint8)
        new, ds = rt.decoder.step(u.to(torch.float64) * 2 - 1, ds, recon)
        apply = (_block_sse(IntDecoder.pixels(new), target, valid)
                 <= _block_sse(IntDecoder.pixels(recon), target, valid)).to(torch.uint8)
        recon = _gate(apply, new, recon)
        out.append((u[0].cpu().numpy(), apply.cpu().numpy()))
    return out


def encode_tile(rt: Runtime, tile: np.ndarray, iterations: int) -> list[bytes]:
    """Range-coded payload of each iteration of one tile."""
    import constriction

    payloads, prev = [], None
    for k, (u, apply) in enumerate(encode_tile_bits(rt, tile, iterations)):
        enc = constriction.stream.queue.RangeEncoder()
        context.encode_iteration(enc, rt.context, k, u, prev)
        context.encode_flags(enc, rt.apply, k, apply)
        payloads.append(np.asarray(enc.get_compressed(), dtype="<u4").tobytes())
        prev = u
    return payloads


def decode_tile(rt: Runtime, payloads: list[bytes], h: int, w: int) -> np.ndarray:
    """(h, w, 3) uint8 pixels of one tile from its first ``len(payloads)`` iterations."""
    return decode_tile_prefixes(rt, payloads, h, w)[-1]


@torch.no_grad()
def decode_tile_prefixes(rt: Runtime, payloads: list[bytes], h: int, w: int) -> list[np.ndarray]:
    """(h, w, 3) uint8 pixels of one tile after each of its iterations (one decoding pass)."""
    import constriction

    ph, pw = h + (-h % BLOCK), w + (-w % BLOCK)
    shape = (ph // BLOCK, pw // BLOCK)
    recon = IntDecoder.initial((1, 3, ph, pw), rt.device)
    ds: list[Any] = [None, None]
    prev, out = None, []
    for k, payload in enumerate(payloads):
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
        u = context.decode_iteration(dec, rt.context, k, rt.arch.bits, shape, prev)
        apply = torch.from_numpy(context.decode_flags(dec, rt.apply, k, shape)).to(rt.device)
        b = torch.from_numpy(u.astype(np.float64) * 2 - 1)[None].to(rt.device)
        new, ds = rt.decoder.step(b, ds, recon)
        recon = _gate(apply, new, recon)
        prev = u
        out.append(IntDecoder.pixels(recon)[:, :h, :w].permute(1, 2, 0).cpu().numpy())
    return out
