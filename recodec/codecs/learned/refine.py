"""Encoder-side latent refinement: stochastic Gumbel annealing (SGA) of the coded integers.

Yang, Bamler, Mandt (2020), "Improving inference for neural image compression" (NeurIPS):
the analysis transform only *predicts* good latents (the amortization gap), and rounding
each one to the nearest integer ignores what the decoder and the entropy model do with it.
Refinement searches, per image, for the integers that minimise the codec's own
rate-distortion loss ``lambda * 255^2 * MSE + bits / pixels``::

    x -> g_a -> y -> (z, tables: fixed) -> s = y - mu (continuous)
                                            |  Adam on s, T iterations:
                                            |    soft-round s between floor and ceil with a
                                            |    Gumbel-softmax whose temperature anneals to 0
                                            |    distortion: float g_s(soft + mu) vs x
                                            |    rate: expected table bits of floor / ceil
                                            v
                                         round(s) -> the stream, as before

Only the encoder changes: the stream format, the integer decoder and its bit-exactness do
not.  The rate term reads the very integer tables the range coder uses, so the estimate is
what the file pays.  The distortion term runs the float network the integer ``g_s``
approximates (dequantised from it, within 0.02 dB).  Cost: about ``iterations`` decoder
forward and backward passes per tile, so it is an opt-in encoder effort (``refine=``).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recodec.codecs.learned.entropy import TABLE_TOTAL, TableSet
from recodec.precision import native_bf16

#: Adam step on the latents, in quantisation steps (robust from quality 1 to 9 in the sweep
#: recorded in docs/learned.md; larger steps inflate the rate at low qualities).
LEARNING_RATE = 0.02
#: Gumbel-softmax temperature: TAU_START * exp(-TAU_DECAY * progress), floored at TAU_END.
TAU_START, TAU_DECAY, TAU_END = 0.5, 3.0, 0.05

_SYNTH: dict[int, nn.Module] = {}
_LOCK = threading.Lock()


def float_synthesis(rt: Any) -> nn.Module:
    """The float ``g_s`` that the runtime's integer synthesis approximates (dequantised once, cached)."""
    from recodec.codecs.learned.models import build_model
    from recodec.codecs.learned.recover import load_layers

    with _LOCK:
        net = _SYNTH.get(id(rt.gs))
        if net is None:
            net = build_model("factorized", rt.n, rt.m, 1).g_s
            with torch.no_grad():
                load_layers(net, rt.gs.layers)
            net = net.to(rt.device).eval().requires_grad_(False)
            _SYNTH[id(rt.gs)] = net
        return net


def bits_table(tables: TableSet, device: str) -> tuple[Tensor, Tensor, Tensor]:
    """(bits per (row, value index), row offsets, row lengths) of integer tables, as tensors."""
    counts = np.maximum(tables.counts, 1).astype(np.float64)
    bits = -np.log2(counts / TABLE_TOTAL)
    return (torch.from_numpy(bits).float().to(device), torch.from_numpy(tables.offsets).to(device),
            torch.from_numpy(tables.lengths).to(device))


def _table_bits(bits: Tensor, lo: Tensor, length: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """Bits of integer ``values`` (float tensor) in their ``rows`` (values clamped into the support)."""
    col = (values - lo[rows]).clamp(min=0).minimum(length[rows] - 1).long()
    return bits[rows, col]


def refine_symbols(
    synth: nn.Module, x: Tensor, valid: tuple[int, int], start: Tensor, offset: Tensor, inv_gain: Tensor,
    tables: TableSet, rows: Tensor, lam: float, *, iterations: int, seed: int = 0,
) -> Tensor:
    """Integers (as a float tensor, shape of ``start``) minimising the RD loss of one tile.

    ``start`` is the continuous symbol (``y - mu``), ``offset`` what the decoder adds back
    (``mu``, or 0), ``inv_gain`` the decoder gain of the quality, ``rows`` each symbol's
    table row; ``x`` is the padded tile in [0, 1] and ``valid`` its real (h, w).
    """
    bits, lo, length = bits_table(tables, str(start.device))
    start, offset = start.float(), offset.float()
    gen = torch.Generator(device=start.device).manual_seed(seed)
    s = start.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([s], lr=LEARNING_RATE)
    h, w = valid
    target = x[..., :h, :w]
    cpu_bf16 = s.device.type == "cpu" and native_bf16()
    for it in range(iterations):
        tau = max(TAU_START * math.exp(-TAU_DECAY * it / iterations), TAU_END)
        floor = torch.floor(s.detach())
        frac = (s - floor).clamp(1e-6, 1 - 1e-6)
        # Logits of rounding down / up (SGA's atanh form): nearer integers are likelier.
        logits = torch.stack([-torch.atanh(frac), -torch.atanh(1 - frac)], dim=-1) / tau
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen, device=s.device).clamp_min(1e-20)))
        weight = torch.softmax(logits + gumbel, dim=-1)
        soft = floor + weight[..., 1]
        rate = (weight[..., 0] * _table_bits(bits, lo, length, rows, floor)
                + weight[..., 1] * _table_bits(bits, lo, length, rows, floor + 1)).sum()
        # bf16 only where the CPU computes it natively: emulated bf16 (AVX2) is several times slower.
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=cpu_bf16):
            x_hat = synth(((soft + offset) * inv_gain).contiguous(memory_format=torch.channels_last))
        mse = F.mse_loss(x_hat.float()[..., :h, :w], target)
        loss = lam * 255**2 * mse + rate / (h * w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.round(s.detach())
