"""Rebuild a trainable float model from a shipped weights file (when its training checkpoint is lost).

Why: the first shipped weights were exported without keeping the float checkpoint, and CPU
training time is scarce, so continuing from them beats starting again.  The shipped file
holds the float encoder (``g_a``, ``h_a``, gains) as is; the decoder side is dequantised
from the integer networks (12-bit weights: the float network they approximate, to within
0.01 dB); the hyper-latent density, stored only as integer tables, is refit to its tables
by minimising the cross-entropy of each table under the density.  The factorized codec's
y densities (one per quality and channel, trained on detached latents, so they never steer
the transforms) are left to relearn in training: refitting 576 of them costs more CPU
than a few hundred training steps do.  :func:`recodec.tasks.train.checkpoint_from_shipped`
writes the result as a training checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from recodec.codecs.learned import integer as I
from recodec.codecs.learned.models import GDN, FactorizedDensity, FactorizedPrior, ScaleHyperprior, build_model

#: Dequantised GDN gammas of exactly 0 get this floor: d(g^2)/dg = 0 at g = 0 would freeze them.
GAMMA_FLOOR = 1e-6


def load_layers(seq: nn.Sequential, layers: list[Any]) -> None:
    """Copy dequantised integer layers into the convolutions / GDNs of ``seq`` (ReLUs skipped)."""
    mods = [m for m in seq if not isinstance(m, nn.ReLU)]
    for mod, layer in zip(mods, layers, strict=True):
        if isinstance(layer, I.IntConv):
            shape = [1, -1, 1, 1] if layer.transposed else [-1, 1, 1, 1]
            mod.weight.data.copy_(layer.weight * torch.exp2(-layer.wfrac).view(shape))
            mod.bias.data.copy_(layer.bias * torch.exp2(-(layer.wfrac + layer.afrac_in)))
        else:
            assert isinstance(mod, GDN)
            gamma = layer.gamma[:, :, 0, 0] * 2.0**-layer.gfrac
            beta = layer.beta * 2.0 ** -(layer.gfrac + 2 * layer.sfrac)
            mod.gamma_raw.data.copy_(gamma.clamp_min(GAMMA_FLOOR).sqrt())
            mod.beta_raw.data.copy_((beta - 1e-6).clamp_min(1e-6).sqrt())


def fit_density(density: FactorizedDensity, counts: Tensor, lengths: Tensor, offsets: Tensor,
                steps: int = 400) -> float:
    """Fit ``density`` to integer tables (one row per channel); returns the mean excess bits/symbol."""
    rows, width = counts.shape
    values = offsets.view(-1, 1).double() + torch.arange(width, dtype=torch.float64).view(1, -1)
    mask = torch.arange(width).view(1, -1) < lengths.view(-1, 1)
    target = counts.double() * mask / counts.double().sum(dim=1, keepdim=True)
    density.double()
    opt = torch.optim.Adam(density.parameters(), lr=1e-2)
    entropy = float(-(target * torch.log2(target.clamp_min(1e-300))).sum(dim=1).mean())
    excess = float("inf")
    for _ in range(steps):
        p = density.bin_probability(values.view(rows, 1, width)).view(rows, width).clamp_min(1e-12)
        ce = -(target * torch.log2(p)).sum(dim=1).mean()
        opt.zero_grad()
        ce.backward()
        opt.step()
        excess = float(ce.detach()) - entropy
    density.float()
    return excess


def model_from_shipped(state: dict[str, Tensor], fit_steps: int = 400) -> tuple[FactorizedPrior, dict[str, float]]:
    """A float model equivalent to a shipped state dict (but the y densities), and the z fit's excess bits."""
    _fmt, n, m, qualities, hyper = (int(v) for v in state["meta"])
    model = build_model("hyperprior" if hyper else "factorized", n, m, qualities)
    enc = {k[4:]: v for k, v in state.items() if k.startswith("enc.")}
    model.load_state_dict(enc, strict=False)

    def layers(prefix: str) -> list[Any]:
        ids = sorted({int(k.split(".")[1]) for k in state if k.startswith(prefix + ".") and k.split(".")[1].isdigit()})
        return [I.layer_from_state(f"{prefix}.{i}", state) for i in ids]

    with torch.no_grad():
        load_layers(model.g_s, layers("gs"))
        ig_frac = int(state["gs.frac"][0])
        model.log_inv_gain.data.copy_(torch.log(state["gs.inv_gain"].double() * 2.0**-ig_frac))
        if isinstance(model, ScaleHyperprior):
            load_layers(model.h_s, layers("hs"))
    report: dict[str, float] = {}
    if isinstance(model, ScaleHyperprior):
        report["density_z_excess_bits"] = fit_density(model.density_z, *_table(state, "z"), steps=fit_steps)
    return model.float(), report


def _table(state: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(state[f"tab.{prefix}.{k}"].long() for k in ("counts", "lengths", "offsets"))  # type: ignore[return-value]
