"""The per-image model: latent pyramid, upsampling, synthesis and the context model (float, for training).

Dataflow (one image, S bands)::

    latents y_0 (H x W), y_1 (H/2 x W/2), ..., y_{L-1} (H/2^(L-1) ...)   integers in the stream
        |                                                   |
        | upsample: cascade of fixed 2x [1,3,3,1]/4 stages  | context model (ARM): for every
        v           (coarsest first, crop, concat)           | latent, 12 causal neighbours of
    L x H x W  --1x1 MLP (ReLU)-->  S x H x W  --3x3 residual | its own level -> MLP -> Laplace
        convs-->  S x H x W  (peak-normalised bands)         | (mu, scale index) -> range coder

The same functions run in exact integer arithmetic at decode time (:mod:`.exact`); here
they run in float32 with the papers' quantisation proxies for the rate–distortion optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recodec.codecs.overfit.tables import B_MIN, LATENT_MAX, LOG_STEP, N_SCALES

#: Causal neighbours (dy, dx) of the context model.  A pixel (i, j) is decoded at wavefront
#: step j + 2i; every neighbour satisfies dx + 2*dy < 0, so it is decoded at an earlier step.
CONTEXT = ((0, -1), (0, -2), (0, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1),
           (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2))
#: Zero padding of a latent grid for the context: top, left, right.
PAD_TOP, PAD_LEFT, PAD_RIGHT = 2, 3, 2
#: Wavefront lag per row (pixel (i, j) at step j + LAG*i).
LAG = 2


@dataclass(frozen=True)
class Arch:
    """Sizes of the per-image networks (written in the stream header)."""

    levels: int
    hidden: tuple[int, ...]
    convs: int
    arm_hidden: int
    bands: int


def level_shapes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Grid size of each latent level, finest first (ceil halving)."""
    out = [(height, width)]
    for _ in range(levels - 1):
        h, w = out[-1]
        out.append(((h + 1) // 2, (w + 1) // 2))
    return out


def up2(x: Tensor, out_h: int, out_w: int, exact: bool) -> Tensor:
    """2x upsampling with the separable kernel [1, 3, 3, 1] / 4 (edge replicated), cropped.

    ``exact``: ``x`` holds integers (float64) and the result is rounded back to the input's
    fixed point (a division by 16 then round half up), so it is the same everywhere.
    """
    n, c, h, w = x.shape
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    mid = 3 * xp[:, :, 1:-1]
    rows = torch.stack([mid + xp[:, :, :-2], mid + xp[:, :, 2:]], dim=3).reshape(n, c, 2 * h, w + 2)
    mid = 3 * rows[..., 1:-1]
    out = torch.stack([mid + rows[..., :-2], mid + rows[..., 2:]], dim=4).reshape(n, c, 2 * h, 2 * w)
    out = out[:, :, :out_h, :out_w]
    return torch.floor(out / 16 + 0.5) if exact else out / 16


def upsample_all(latents: list[Tensor], exact: bool = False) -> Tensor:
    """(1, L, H, W): every level brought to full resolution, finest level first."""
    x = latents[-1]
    for lat in reversed(latents[:-1]):
        x = torch.cat([lat, up2(x, lat.shape[2], lat.shape[3], exact)], dim=1)
    return x


def contexts(y: Tensor) -> Tensor:
    """(len(CONTEXT), h*w) causal neighbours of every latent of one (1, 1, h, w) level, one row per neighbour.

    Neighbours are rows, latents columns, so the context model's layers are ``W @ x`` products
    with a long contiguous inner dimension (``benchmarks/overfitted_step.py`` times the step).
    """
    h, w = y.shape[2:]
    yp = F.pad(y, (PAD_LEFT, PAD_RIGHT, PAD_TOP, 0))[0, 0]
    cols = [yp[PAD_TOP + dy:PAD_TOP + dy + h, PAD_LEFT + dx:PAD_LEFT + dx + w] for dy, dx in CONTEXT]
    return torch.stack(cols).reshape(len(CONTEXT), h * w)


def dense(layers: nn.ModuleList, x: Tensor) -> Tensor:
    """Linear layers with ReLU between them, on features as rows and samples as columns."""
    for i, layer in enumerate(layers):
        x = torch.addmm(layer.bias[:, None], layer.weight, x)
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


class Synthesis(nn.Module):
    """Per-pixel MLP (1x1 convolutions, ReLU) then residual 3x3 convolutions, S output bands."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        widths = (arch.levels, *arch.hidden, arch.bands)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.convs = nn.ModuleList(nn.Conv2d(arch.bands, arch.bands, 3, padding=1) for _ in range(arch.convs))
        for conv in self.convs:  # start as the identity: the residual branches learn corrections
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        x = dense(self.mlp, x.reshape(c, h * w))  # pixels as columns: long inner dimension, no transposes
        # channels-last for the 3x3 convolutions: oneDNN's backward is about 5x faster there (measured)
        x = x.T.contiguous().reshape(1, h, w, -1).permute(0, 3, 1, 2)
        for i, conv in enumerate(self.convs):
            x = x + conv(x)
            if i < len(self.convs) - 1:
                x = F.relu(x)
        return x


class ContextModel(nn.Module):
    """Autoregressive entropy model: causal neighbours -> (mean, scale index) of a Laplace."""

    def __init__(self, arch: Arch) -> None:
        super().__init__()
        n = len(CONTEXT)
        self.layers = nn.ModuleList([nn.Linear(n, arch.arm_hidden), nn.Linear(arch.arm_hidden, arch.arm_hidden),
                                     nn.Linear(arch.arm_hidden, 2)])
        nn.init.zeros_(self.layers[-1].weight)
        with torch.no_grad():
            self.layers[-1].bias.copy_(torch.tensor([0.0, N_SCALES / 2]))

    def forward(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, scale index) of every column of ``ctx`` (:func:`contexts`)."""
        out = dense(self.layers, ctx)
        return out[0], out[1]


def laplace_bits(y: Tensor, mu: Tensor, index: Tensor) -> Tensor:
    """Bits of integer(-ish) ``y`` under Laplace(mu, scale(index)) integrated over [y-1/2, y+1/2]."""
    scale = B_MIN * torch.exp(index.clamp(0, N_SCALES - 1) * LOG_STEP)

    def cdf(x: Tensor) -> Tensor:
        z = (x - mu) / scale
        tail = 0.5 * torch.exp(-z.abs())
        return torch.where(z < 0, tail, 1 - tail)

    p = (cdf(y + 0.5) - cdf(y - 0.5)).clamp_min(2.0**-16)
    return -torch.log2(p)


class OverfitModel(nn.Module):
    """Latents + synthesis + context model of one image."""

    def __init__(self, arch: Arch, height: int, width: int) -> None:
        super().__init__()
        self.arch = arch
        self.latents = nn.ParameterList(nn.Parameter(torch.zeros(1, 1, h, w))
                                        for h, w in level_shapes(height, width, arch.levels))
        self.synthesis = Synthesis(arch)
        self.arm = ContextModel(arch)

    def quantized(self, mode: str, generator: torch.Generator | None = None, first: int = 0) -> list[Tensor]:
        """Latents ``first``.. under a quantisation proxy: "noise" (uniform), "ste" (straight-through) or "round"."""
        out = []
        for y in list(self.latents)[first:]:
            y = y.clamp(-LATENT_MAX, LATENT_MAX)
            if mode == "noise":
                y = y + torch.rand(y.shape, generator=generator, device=y.device) - 0.5
            elif mode == "ste":
                y = y + (torch.round(y) - y).detach()
            else:
                y = torch.round(y)
            out.append(y)
        return out

    def forward(self, mode: str, generator: torch.Generator | None = None, skip: int = 0) -> tuple[Tensor, Tensor]:
        """(reconstruction (1, S, H, W), total latent bits).

        ``skip > 0`` runs the model at ``1 / 2**skip`` of the resolution for the encoder's
        coarse-to-fine start: the ``skip`` finest levels read as zeros (and cost nothing), the
        others are exactly what the full-resolution model upsamples, one stage less each.
        """
        q = self.quantized(mode, generator, skip)  # no noise drawn for the skipped grids
        bits = sum(laplace_bits(y.reshape(-1), *self.arm(contexts(y))).sum() for y in q)
        features = upsample_all(q)
        if skip:
            features = torch.cat([features.new_zeros((1, skip, *features.shape[2:])), features], dim=1)
        return self.synthesis(features), torch.as_tensor(bits)
