"""Exact integer decoder of the recurrent codec: ConvGRUs with lookup-table sigmoid and tanh.

Reuses the fixed-point convolutions of :mod:`recodec.codecs.learned.integer` (float64
tensors holding integers, every partial sum provably below 2**52, so any summation order
gives the same result).  What is new here is the recurrent cell:

* pre-activations: each gate's input and state accumulators are requantised to
  ``PRE_FRAC`` fractional bits (exact power-of-two rescale + ``floor``) and added;
* ``sigmoid`` / ``tanh``: a table lookup at ``rint(pre * 2**(LUT_FRAC - PRE_FRAC))`` clamped
  to +-``LUT_RANGE``; the tables (outputs scaled by 2**GATE_FRAC) are integers stored in
  the weights file, so no ``exp`` runs at decode time;
* state update ``h' = ((2**15 - z) n + z h) / 2**15`` rounded: products below 2**31.

The hidden state is an integer with GATE_FRAC fractional bits in [-2**15, 2**15].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from recodec.codecs.learned.integer import ACT_MAX, IntConv, pow2, rint

#: Fractional bits of gate pre-activations.
PRE_FRAC = 12
#: Fractional bits of the lookup tables' input (step 1/256).
LUT_FRAC = 8
#: The tables cover pre-activations in [-LUT_RANGE, LUT_RANGE] / 2**LUT_FRAC (here +-8).
LUT_RANGE = 8 << LUT_FRAC
#: Fractional bits of gate outputs and of the hidden state.
GATE_FRAC = 15
ONE = float(1 << GATE_FRAC)
#: Fractional bits of the reconstruction accumulator (pixels in [0, 1]).
RECON_FRAC = 16
#: Pre-activations are clamped here before the reset-gate product (keeps it far below 2**52).
PRE_CLAMP = float(1 << 26)


def make_luts() -> tuple[Tensor, Tensor]:
    """Integer sigmoid and tanh tables (computed once at export and stored as integers)."""
    x = torch.arange(-LUT_RANGE, LUT_RANGE + 1, dtype=torch.float64) / (1 << LUT_FRAC)
    sig = torch.tensor([round(ONE / (1 + math.exp(-v))) for v in x.tolist()], dtype=torch.int32)
    tanh = torch.tensor([round(ONE * math.tanh(v)) for v in x.tolist()], dtype=torch.int32)
    return sig, tanh


def lookup(table: Tensor, pre: Tensor) -> Tensor:
    """Table value at the rounded, clamped pre-activation (``pre`` has PRE_FRAC bits)."""
    idx = rint(pre * pow2(LUT_FRAC - PRE_FRAC, pre)).clamp(-LUT_RANGE, LUT_RANGE) + LUT_RANGE
    return table[idx.to(torch.int64)]


def requant(acc: Tensor, frac: Tensor, to: int) -> Tensor:
    """Exactly rescale an accumulator with per-channel fractional bits ``frac`` to ``to`` bits."""
    return rint(acc * pow2(to - frac, acc).view(1, -1, 1, 1))


@dataclass
class IntGRU:
    """Integer ConvGRU cell (see :class:`recodec.codecs.rnn.models.ConvGRU`)."""

    wx: IntConv
    wh: IntConv
    sig: Tensor      # float64 integer table, outputs in [0, 2**15]
    tanh: Tensor     # float64 integer table, outputs in [-2**15, 2**15]

    def pre(self, conv: IntConv, x: Tensor) -> Tensor:
        """Gate pre-activations with PRE_FRAC fractional bits, clamped."""
        acc = conv.accumulate(x)
        return requant(acc, conv.wfrac + conv.afrac_in, PRE_FRAC).clamp(-PRE_CLAMP, PRE_CLAMP)

    def __call__(self, x: Tensor, h: Tensor | None) -> Tensor:
        gx = self.pre(self.wx, x)
        if h is None:
            h = gx.new_zeros(gx.shape[0], gx.shape[1] // 3, gx.shape[2], gx.shape[3])
        gh = self.pre(self.wh, h)
        xz, xr, xn = gx.chunk(3, 1)
        hz, hr, hn = gh.chunk(3, 1)
        z = lookup(self.sig, xz + hz)
        r = lookup(self.sig, xr + hr)
        n = lookup(self.tanh, xn + rint(r * hn / ONE))
        return rint(((ONE - z) * n + z * h) / ONE)


@dataclass
class IntDecoder:
    """Integer decoder: one call per iteration maps codes (+-1) to the new reconstruction."""

    inp: IntConv
    g1: IntGRU
    g2: IntGRU
    c3: IntConv
    c4: IntConv
    out: IntConv

    def step(self, bits: Tensor, state: list[Tensor | None], recon: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        """Add one iteration's residual estimate to ``recon`` (RECON_FRAC fixed point)."""
        x = self.inp(bits.to(torch.float64))
        h1 = self.g1(x, state[0])
        h2 = self.g2(F.pixel_shuffle(h1, 2), state[1])
        x = self.c3(F.pixel_shuffle(h2, 2))
        x = self.c4(F.pixel_shuffle(x, 2))
        acc = self.out.accumulate(F.pixel_shuffle(x, 2))
        d = requant(acc, self.out.wfrac + self.out.afrac_in, RECON_FRAC)
        # Clamping keeps the accumulator bounded whatever the codes; [-1, 2] never binds in practice.
        recon = (recon + d).clamp(-(2.0**RECON_FRAC), 2 * 2.0**RECON_FRAC)
        return recon, [h1, h2]

    @staticmethod
    def initial(shape: tuple[int, int, int, int], device: str = "cpu") -> Tensor:
        """The iteration-0 reconstruction: mid-grey (1/2) everywhere."""
        return torch.full(shape, 2.0 ** (RECON_FRAC - 1), dtype=torch.float64, device=device)

    @staticmethod
    def pixels(recon: Tensor) -> Tensor:
        """uint8 (3, H, W) pixels of a (1, 3, H, W) reconstruction, exactly."""
        return rint(recon[0] * 255.0 * pow2(-RECON_FRAC, recon)).clamp(0, 255).to(torch.uint8)


def gate_bound_ok(gru: IntGRU) -> bool:
    """True when both GRU convolutions are provably exact (|state| <= 2**15, inputs <= ACT_MAX)."""
    from recodec.codecs.learned.integer import check_bounds

    try:
        check_bounds([gru.wx], in_max=ACT_MAX)
        check_bounds([gru.wh], in_max=ONE)
    except ValueError:
        return False
    return True
