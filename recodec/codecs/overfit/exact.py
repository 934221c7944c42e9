"""The decoder's arithmetic: quantised network parameters and exact integer forward passes.

Every tensor here holds integers (in float64 or int64).  Weights are signed integers of at
most ``bits`` bits with one power-of-two step ``2**-wf`` per layer, biases are integers at the
accumulator's fixed point, activations are fixed point with :data:`HIDDEN_FRAC` /
:data:`OUT_FRAC` fractional bits, clamped to ``±ACT_LIMIT``.  :func:`check_layer` proves that
every product and partial sum stays below 2**52, so float64 sums are exact in any order:
the same on every thread count, BLAS, CPU and GPU (cuDNN off).  Between layers only exact
operations run: power-of-two scaling, ``floor(x + 1/2)`` and clamping (as in the hyperprior's
integer networks, :mod:`recodec.codecs.learned.integer`, whose helpers this reuses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from recodec.codecs.learned.integer import EXACT_LIMIT, pow2
from recodec.codecs.overfit.network import Arch, OverfitModel, upsample_all
from recodec.codecs.overfit.tables import LATENT_MAX, MU_FRAC_BITS, N_SCALES

#: Fractional bits of the latents inside the upsampling cascade.
LATENT_FRAC = 6
#: Fractional bits of hidden activations (synthesis and context model).
HIDDEN_FRAC = 12
#: Fractional bits of the synthesis output (peak-normalised bands) and its 3x3 stage.
OUT_FRAC = 16
ACT_LIMIT = 2**24 - 1
WF_RANGE = (-8, 30)


@dataclass
class QLayer:
    """One quantised layer: integer weight (out, in[, 3, 3]), integer bias, weight step 2**-wf."""

    weight: np.ndarray
    bias: np.ndarray
    wf: int

    def tensors(self, device: str = "cpu") -> tuple[Tensor, Tensor]:
        """(weight, bias) as float64 tensors on ``device``."""
        return (torch.from_numpy(self.weight.astype(np.float64)).to(device),
                torch.from_numpy(self.bias.astype(np.float64)).to(device))


@dataclass
class QNet:
    """Every quantised parameter of one image's networks, in stream order."""

    arch: Arch
    mlp: list[QLayer]
    convs: list[QLayer]
    arm: list[QLayer]

    def layers(self) -> list[QLayer]:
        """All layers in stream order."""
        return [*self.mlp, *self.convs, *self.arm]


def layer_shapes(arch: Arch) -> list[tuple[int, ...]]:
    """Weight shapes of every layer in stream order (the decoder's expectation)."""
    widths = (arch.levels, *arch.hidden, arch.bands)
    shapes: list[tuple[int, ...]] = [(b, a) for a, b in zip(widths[:-1], widths[1:])]
    shapes += [(arch.bands, arch.bands, 3, 3)] * arch.convs
    n = 12
    shapes += [(arch.arm_hidden, n), (arch.arm_hidden, arch.arm_hidden), (2, arch.arm_hidden)]
    return shapes


def input_fracs(arch: Arch) -> list[int]:
    """Fractional bits of each layer's input, in stream order."""
    mlp = [LATENT_FRAC] + [HIDDEN_FRAC] * len(arch.hidden)
    return mlp + [OUT_FRAC] * arch.convs + [0, HIDDEN_FRAC, HIDDEN_FRAC]


def check_layer(layer: QLayer) -> bool:
    """True when every partial sum of the layer is provably below 2**52 (exact in float64)."""
    w = np.abs(layer.weight.astype(np.float64)).reshape(layer.weight.shape[0], -1).sum(axis=1)
    worst = w * ACT_LIMIT + np.abs(layer.bias.astype(np.float64))
    return bool(worst.max() < EXACT_LIMIT) and WF_RANGE[0] <= layer.wf <= WF_RANGE[1]


def quantize_layer(weight: Tensor, bias: Tensor, fin: int, bits: int) -> QLayer:
    """Integer weights of at most ``bits`` bits (one power-of-two step) and the matching bias."""
    w = weight.detach().double().cpu().numpy()
    b = bias.detach().double().cpu().numpy()
    peak = max(float(np.abs(w).max()), 1e-9)
    wf = int(min(WF_RANGE[1], max(WF_RANGE[0], math.floor(math.log2((2 ** (bits - 1) - 1) / peak)))))
    while True:
        layer = QLayer(np.rint(w * 2.0**wf).astype(np.int64), np.rint(b * 2.0 ** (wf + fin)).astype(np.int64), wf)
        if check_layer(layer) or wf <= WF_RANGE[0]:
            return layer
        wf -= 1


def float_layers(model: OverfitModel) -> list[torch.nn.Module]:
    """The float layers of ``model`` that the stream quantises, in stream order."""
    return [*model.synthesis.mlp, *model.synthesis.convs, *model.arm.layers]


def split_layers(arch: Arch, layers: list[QLayer]) -> QNet:
    """Quantised layers in stream order -> a :class:`QNet`."""
    nm, nc = len(arch.hidden) + 1, arch.convs
    return QNet(arch, layers[:nm], layers[nm:nm + nc], layers[nm + nc:])


def _requant_(acc: Tensor, shift: int, relu: bool) -> Tensor:
    """``acc * 2**shift`` rounded half up and clamped, in place (exact: power-of-two scaling, floor(x + 1/2)).

    In place because these passes are memory-bound: fresh outputs cost about twice the time.
    """
    return acc.mul_(pow2(shift, acc)).add_(0.5).floor_().clamp_(0 if relu else -ACT_LIMIT, ACT_LIMIT)


def features(latents: list[Tensor]) -> Tensor:
    """The synthesis input: integer latents (1, 1, h, w) float64, upsampled exactly -> (1, L, H, W), LATENT_FRAC fixed point."""
    return upsample_all([y * 2.0**LATENT_FRAC for y in latents], exact=True)


def synthesize(net: QNet, latents: list[Tensor] | Tensor) -> Tensor:
    """Exact synthesis: integer latents (1, 1, h, w) float64, or their :func:`features`, -> (S, H, W) output, OUT_FRAC fixed point."""
    x = features(latents) if isinstance(latents, list) else latents
    device = x.device
    _, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(h * w, c)
    fin = LATENT_FRAC
    for i, layer in enumerate(net.mlp):
        wt, b = layer.tensors(device)
        last = i == len(net.mlp) - 1
        fout = OUT_FRAC if last else HIDDEN_FRAC
        x = _requant_(torch.addmm(b, x, wt.T), fout - fin - layer.wf, relu=not last)
        fin = fout
    x = x.reshape(1, h, w, -1).permute(0, 3, 1, 2).contiguous()
    for i, layer in enumerate(net.convs):
        wt, b = layer.tensors(device)
        with torch.backends.cudnn.flags(enabled=False):  # no Winograd/FFT: sums of exact products only
            acc = F.conv2d(x, wt, b, padding=1)
        x = x.add_(_requant_(acc, -layer.wf, relu=False)).clamp_(-ACT_LIMIT, ACT_LIMIT)
        if i < len(net.convs) - 1:
            x = x.clamp_min_(0)
    return x[0].clamp_(0, 2**OUT_FRAC)


class ExactArm:
    """Exact context model on numpy float64: (n, 12) integer contexts -> (mu * 8, scale index)."""

    def __init__(self, net: QNet) -> None:
        self.layers = [(q.weight.astype(np.float64).T.copy(), q.bias.astype(np.float64), q.wf) for q in net.arm]

    def __call__(self, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = ctx.astype(np.float64)
        fin = 0
        for w, b, wf in self.layers[:-1]:
            x = np.floor((x @ w + b) * 2.0 ** (HIDDEN_FRAC - fin - wf) + 0.5)
            x = np.clip(x, 0, ACT_LIMIT)
            fin = HIDDEN_FRAC
        w, b, wf = self.layers[-1]
        acc = x @ w + b
        mu = np.floor(acc[:, 0] * 2.0 ** (MU_FRAC_BITS - fin - wf) + 0.5)
        index = np.floor(acc[:, 1] * 2.0 ** (-fin - wf) + 0.5)
        limit = (LATENT_MAX + 1) << MU_FRAC_BITS
        return (np.clip(mu, -limit, limit).astype(np.int64), np.clip(index, 0, N_SCALES - 1).astype(np.int64))
