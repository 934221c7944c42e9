"""Float (training) networks of the recurrent progressive codec (Toderici et al. 2016, 2017).

Toderici, O'Malley, Hwang, Vincent, Minnen, Baluja, Covell, Sukthankar, "Variable rate image
compression with recurrent neural networks", ICLR 2016; Toderici, Vincent, Johnston, Hwang,
Minnen, Shor, Covell, "Full resolution image compression with recurrent neural networks",
CVPR 2017.  Additive reconstruction with residual input ("additive" in the 2016 paper)::

    r_0 = x - 1/2,  x_hat_0 = 1/2
    for k in 1..K:
        b_k = B(E(r_{k-1}; state_E))        # BITS binary codes per 16x16 block, in {-1, +1}
        d_k = D(b_k; state_D)               # residual estimate, full resolution
        x_hat_k = x_hat_{k-1} + d_k
        r_k = x - x_hat_k                   # fed to the encoder at the next iteration

    E: conv s2 -> conv s2 -> ConvGRU s2 (1/8) -> ConvGRU s2 (1/16) -> 1x1 -> tanh -> B
    D: 1x1 -> ConvGRU (1/16) -> d2s -> ConvGRU (1/8) -> d2s -> conv -> d2s -> conv -> d2s -> conv

Recurrence lives at 1/16 and 1/8 resolution, where it is cheap; the full-resolution
layers are plain convolutions (a CPU budget choice; the 2017 paper is recurrent at every
scale).  The decoder uses only operations with an exact integer counterpart
(:mod:`recodec.codecs.rnn.integer`): convolutions, ReLU, depth-to-space, and GRU gates
whose sigmoid/tanh become lookup tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class Arch:
    """Architecture integers (stored in the weights file)."""

    bits: int = 32          # binary codes per 16x16 block per iteration
    iterations: int = 8     # K
    enc: int = 64           # encoder width
    hid: int = 64           # recurrent state channels
    dec: int = 64           # decoder conv width


class ConvGRU(nn.Module):
    """Convolutional GRU with the reset gate applied to the hidden projection (cuDNN form).

    z = s(Wz x + Uz h), r = s(Wr x + Ur h), n = tanh(Wn x + r * (Un h)), h' = (1 - z) n + z h.
    One convolution of the input and one of the state per step.
    """

    def __init__(self, cin: int, hidden: int, *, stride: int = 1, k: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.wx = nn.Conv2d(cin, 3 * hidden, k, stride, k // 2)
        self.wh = nn.Conv2d(hidden, 3 * hidden, k, 1, k // 2, bias=False)

    def forward(self, x: Tensor, h: Tensor | None) -> Tensor:
        gx = self.wx(x)
        if h is None:
            h = gx.new_zeros(gx.shape[0], self.hidden, gx.shape[2], gx.shape[3])
        gh = self.wh(h)
        xz, xr, xn = gx.chunk(3, 1)
        hz, hr, hn = gh.chunk(3, 1)
        z = torch.sigmoid(xz + hz)
        r = torch.sigmoid(xr + hr)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


class Encoder(nn.Module):
    """Residual -> tanh codes (B, bits, H/16, W/16); recurrent at 1/8 and 1/16."""

    def __init__(self, a: Arch) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, a.enc // 2, 3, 2, 1)
        self.c2 = nn.Conv2d(a.enc // 2, a.enc, 3, 2, 1)
        self.g1 = ConvGRU(a.enc, a.hid, stride=2)
        self.g2 = ConvGRU(a.hid, a.hid, stride=2)
        self.out = nn.Conv2d(a.hid, a.bits, 1)

    def forward(self, r: Tensor, state: list[Tensor | None]) -> tuple[Tensor, list[Tensor | None]]:
        x = F.relu(self.c2(F.relu(self.c1(r))))
        h1 = self.g1(x, state[0])
        h2 = self.g2(h1, state[1])
        return torch.tanh(self.out(h2)), [h1, h2]


class Decoder(nn.Module):
    """Codes -> residual estimate (B, 3, H, W); recurrent at 1/16 and 1/8."""

    def __init__(self, a: Arch) -> None:
        super().__init__()
        self.inp = nn.Conv2d(a.bits, a.hid, 1)
        self.g1 = ConvGRU(a.hid, a.hid)
        self.g2 = ConvGRU(a.hid // 4, a.hid)
        self.c3 = nn.Conv2d(a.hid // 4, a.dec, 3, 1, 1)
        self.c4 = nn.Conv2d(a.dec // 4, a.dec // 2, 3, 1, 1)
        self.out = nn.Conv2d(a.dec // 8, 3, 3, 1, 1)

    def forward(self, b: Tensor, state: list[Tensor | None]) -> tuple[Tensor, list[Tensor | None]]:
        x = F.relu(self.inp(b))
        h1 = self.g1(x, state[0])
        h2 = self.g2(F.pixel_shuffle(h1, 2), state[1])
        x = F.relu(self.c3(F.pixel_shuffle(h2, 2)))
        x = F.relu(self.c4(F.pixel_shuffle(x, 2)))
        return self.out(F.pixel_shuffle(x, 2)), [h1, h2]


def binarize(t: Tensor, training: bool) -> Tensor:
    """Toderici's binarizer: stochastic +-1 with P(+1) = (1 + t) / 2 in training, sign at test.

    The gradient passes straight through (d b / d t = 1).
    """
    if training:
        noise = torch.where(torch.rand_like(t) < (1 + t) / 2, 1.0 - t, -1.0 - t)
    else:
        noise = torch.where(t >= 0, 1.0 - t, -1.0 - t)
    return t + noise.detach()


class RecurrentCodec(nn.Module):
    """Encoder + binarizer + decoder unrolled over K iterations (training and reference)."""

    def __init__(self, arch: Arch = Arch()) -> None:
        super().__init__()
        self.arch = arch
        self.encoder = Encoder(arch)
        self.decoder = Decoder(arch)

    def forward(self, x: Tensor, iterations: int | None = None) -> tuple[list[Tensor], list[Tensor]]:
        """Per-iteration reconstructions and codes for a (B, 3, H, W) batch in [0, 1] (H, W % 16 == 0)."""
        k_max = iterations or self.arch.iterations
        es: list[Tensor | None] = [None, None]
        ds: list[Tensor | None] = [None, None]
        x_hat = torch.full_like(x, 0.5)
        recs, codes = [], []
        for _ in range(k_max):
            t, es = self.encoder(x - x_hat, es)
            b = binarize(t, self.training)
            d, ds = self.decoder(b, ds)
            x_hat = x_hat + d
            recs.append(x_hat)
            codes.append(b)
        return recs, codes
