"""Turn a float training checkpoint into the shipped weights file.

The shipped file is a flat ``{name: tensor}`` state dict (``torch.save``) holding

* ``enc.*``: float32 analysis side (``g_a``, ``h_a``, encoder gains) - the encoder may be
  non-deterministic, the bitstream it writes is what counts;
* ``gs.*`` / ``hs.*``: the integer synthesis networks of :mod:`.integer`;
* ``tab.*``: integer probability tables of :mod:`.entropy` (z prior, factorized y prior,
  Gaussian scale table);
* ``meta``: architecture integers.

Its SHA-256 goes into ``pins.json`` beside it and into every bitstream header.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recodec.codecs.learned import integer as I
from recodec.codecs.learned.entropy import density_tables, gaussian_tables, pack_tables
from recodec.codecs.learned.models import (
    SCALE_MAX, SCALE_MIN, SCALE_STEPS_PER_NAT, FactorizedPrior, GDN, ScaleHyperprior, build_model,
)
from recodec.codecs.weights import write_pinned

WEIGHTS_FORMAT = 1
#: Support searched for the factorized densities' tables (values beyond are clamped).
Z_BOUND = 64
Y_BOUND = 512


def scale_table() -> tuple[int, np.ndarray]:
    """(index offset, scales): scale i is exp((i + offset) / SCALE_STEPS_PER_NAT)."""
    lo = math.floor(math.log(SCALE_MIN) * SCALE_STEPS_PER_NAT)
    hi = math.ceil(math.log(SCALE_MAX) * SCALE_STEPS_PER_NAT)
    return lo, np.exp(np.arange(lo, hi + 1) / SCALE_STEPS_PER_NAT)


def _calibrate(seq: torch.nn.Sequential, x: torch.Tensor) -> list[float]:
    """Peak |activation| after each layer of ``seq`` (ReLU counts with its conv)."""
    peaks = []
    for layer in seq:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            peaks[-1] = float(x.abs().max())
        else:
            peaks.append(float(x.abs().max()))
    return peaks


def _int_layers(seq: torch.nn.Sequential, afrac_in: int, peaks: list[float]) -> list[I.IntConv | I.IntIGDN]:
    """Quantise a Sequential of convs / IGDN / ReLU given calibrated output peaks."""
    mods = list(seq)
    out: list[I.IntConv | I.IntIGDN] = []
    frac, k = afrac_in, 0
    for i, layer in enumerate(mods):
        if isinstance(layer, torch.nn.ReLU):
            continue
        frac_out = I.act_frac(peaks[k])
        k += 1
        if isinstance(layer, GDN):
            out.append(I.make_igdn(layer.gamma, layer.beta, afrac_in=frac, afrac_out=frac_out))
        else:
            relu = i + 1 < len(mods) and isinstance(mods[i + 1], torch.nn.ReLU)
            transposed = isinstance(layer, torch.nn.ConvTranspose2d)
            out.append(I.make_conv(layer.weight, layer.bias, afrac_in=frac, afrac_out=frac_out,
                                   stride=layer.stride[0], transposed=transposed, relu=relu))
        frac = frac_out
    return out


@torch.no_grad()
def build_shipped_state(model: FactorizedPrior, calibration: list[np.ndarray], crop: int = 256) -> dict[str, torch.Tensor]:
    """The shipped flat state dict of a trained float model.

    Long on purpose: one straight list of tensor conversions, in the order the integer
    decoder reads them; split up, the order would be harder to check against it.
    """
    # Calibration only needs activation peaks: float32 is plenty and twice as fast.
    model = model.float().eval()
    crops = []
    for img in calibration:
        h, w = img.shape[:2]
        c = min(crop, h, w) // 64 * 64
        if c:
            crops.append(torch.from_numpy(img[:c, :c].transpose(2, 0, 1).astype(np.float32) / 255.0))
    state: dict[str, torch.Tensor] = {}
    hyper = isinstance(model, ScaleHyperprior)
    gs_peaks: list[float] = []
    hs_peaks: list[float] = []
    gs_in_peak, hs_in_peak = 0.0, 0.0
    for q in range(model.qualities):
        for x in crops:
            y = model.analysis(x[None], q)
            if hyper:
                z_hat = torch.round(model.h_a(y))
                scale, mu = model.hyper_params(z_hat)
                y_hat = torch.round(y - mu) + mu
                p = _calibrate(model.h_s, z_hat)
                hs_peaks = [max(a, b) for a, b in zip(hs_peaks, p)] if hs_peaks else p
                hs_in_peak = max(hs_in_peak, float(z_hat.abs().max()))
            else:
                y_hat = torch.round(y)
            g_in = y_hat * model.inv_gain(q)
            gs_in_peak = max(gs_in_peak, float(g_in.abs().max()))
            p = _calibrate(model.g_s, g_in)
            gs_peaks = [max(a, b) for a, b in zip(gs_peaks, p)] if gs_peaks else p

    # --- integer g_s: inverse gain stage then the layers ---
    afrac0 = I.act_frac(gs_in_peak)
    inv_gain = torch.exp(model.log_inv_gain.detach())
    ig_frac = math.floor(math.log2((2**15 - 1) / float(inv_gain.max())))
    state["gs.inv_gain"] = torch.round(inv_gain * 2.0**ig_frac).to(torch.int32)
    state["gs.frac"] = torch.tensor([ig_frac, afrac0], dtype=torch.int32)
    gs_layers = _int_layers(model.g_s, afrac0, gs_peaks)
    I.check_bounds(gs_layers, final_gain=255)
    for i, layer in enumerate(gs_layers):
        state.update(I.state_of(f"gs.{i}", layer))

    # --- factorized y tables (one row per quality x channel) ---
    def dens_probs(density: torch.nn.Module, channels: int, bound: int):
        def f(values: np.ndarray) -> np.ndarray:
            v = torch.from_numpy(values.astype(np.float64)).view(1, 1, -1).expand(channels, 1, -1)
            return density.bin_probability(v.contiguous()).view(channels, -1).numpy()
        return f

    model = model.double()  # probability tables are evaluated in float64, once, here
    ty = density_tables(dens_probs(model.density_y, model.m * model.qualities, Y_BOUND),
                        model.m * model.qualities, bound=Y_BOUND)
    state.update({f"tab.y.{k}": torch.from_numpy(v) for k, v in ty.items()})
    state["enc.log_gain"] = model.log_gain.detach().float()
    for k, v in model.g_a.state_dict().items():
        state[f"enc.g_a.{k}"] = v.float()

    if hyper:
        assert isinstance(model, ScaleHyperprior)
        for k, v in model.h_a.state_dict().items():
            state[f"enc.h_a.{k}"] = v.float()
        hs_layers = _int_layers(model.h_s, 0, hs_peaks)
        I.check_bounds(hs_layers, in_max=Z_BOUND)
        for i, layer in enumerate(hs_layers):
            state.update(I.state_of(f"hs.{i}", layer))
        tz = density_tables(dens_probs(model.density_z, model.n, Z_BOUND), model.n, bound=Z_BOUND)
        state.update({f"tab.z.{k}": torch.from_numpy(v) for k, v in tz.items()})
        offset, scales = scale_table()
        ts = gaussian_tables(scales)
        state.update({f"tab.s.{k}": torch.from_numpy(v) for k, v in ts.items()})
        state["hs.scale_offset"] = torch.tensor(offset, dtype=torch.int32)
    state["meta"] = torch.tensor([WEIGHTS_FORMAT, model.n, model.m, model.qualities, int(hyper)],
                                 dtype=torch.int32)
    return state


@torch.no_grad()
def extend_shipped_state(shipped: dict[str, torch.Tensor], model: FactorizedPrior, new: int,
                         calibration: list[np.ndarray], crop: int = 256) -> dict[str, torch.Tensor]:
    """``shipped`` with ``new`` rate points prepended (qualities 1..new), every existing one unchanged.

    ``model`` is the float model of the extended ladder (:mod:`recodec.tasks.ladder`), whose
    qualities ``new..`` must equal the shipped ones'.  Why not :func:`build_shipped_state`:
    it recalibrates the integer networks' fixed-point scales over all qualities, so the old
    rate points would decode to other pixels.  Here the integer ``g_s``/``h_s``, the z and
    Gaussian tables, the encoder and the old gain and y-table rows are copied; only the new
    decoder gains (at the old fixed-point scale) and y-table rows are added, after checking
    on ``calibration`` crops that the new points' activations fit the old scales (no clamping).
    """
    model = model.float().eval()
    _fmt, n, m, qualities, hyper = (int(v) for v in shipped["meta"])
    if (model.n, model.m, model.qualities) != (n, m, qualities + new):
        raise ValueError(f"model has N={model.n} M={model.m} Q={model.qualities}; shipped N={n} M={m} Q={qualities}")
    old_gain = shipped["enc.log_gain"]
    if not torch.equal(model.log_gain.detach().float()[new:], old_gain):
        raise ValueError("the model's existing encoder gains differ from the shipped ones")
    ig_frac, afrac0 = (int(v) for v in shipped["gs.frac"])
    inv_gain = torch.round(torch.exp(model.log_inv_gain.detach().double()[:new]) * 2.0**ig_frac)
    state = dict(shipped)
    state["gs.inv_gain"] = torch.cat([inv_gain.to(torch.int32), shipped["gs.inv_gain"]])
    state["enc.log_gain"] = model.log_gain.detach().float().clone()
    state["meta"] = torch.tensor([WEIGHTS_FORMAT, n, m, qualities + new, hyper], dtype=torch.int32)
    _check_new_points_fit(state, model, new, calibration, crop)

    # y tables: new rows evaluated in float64 like build_shipped_state's, old rows copied as they are.
    density = model.double().density_y

    def probs(values: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(values.astype(np.float64)).view(1, 1, -1).expand(new * m, 1, -1).contiguous()
        return density.bin_probability(v, slice(0, new * m)).view(new * m, -1).numpy()

    fresh = density_tables(probs, new * m, bound=Y_BOUND)
    model.float()
    counts, lengths = shipped["tab.y.counts"].numpy(), shipped["tab.y.lengths"].numpy()
    rows = [fresh["counts"][i, : fresh["lengths"][i]] for i in range(new * m)]
    rows += [counts[i, : lengths[i]] for i in range(len(lengths))]
    offsets = [*fresh["offsets"].tolist(), *shipped["tab.y.offsets"].numpy().tolist()]
    state.update({f"tab.y.{k}": torch.from_numpy(v) for k, v in pack_tables(rows, offsets).items()})
    return state


def _check_new_points_fit(state: dict[str, torch.Tensor], model: FactorizedPrior, new: int,
                          calibration: list[np.ndarray], crop: int) -> None:
    """Raise ValueError if a new rate point would clamp an activation of the copied integer ``g_s``/``h_s``."""
    gs_layers = [I.layer_from_state(f"gs.{i}", state) for i in range(_count(state, "gs"))]
    hs_layers = [I.layer_from_state(f"hs.{i}", state) for i in range(_count(state, "hs"))]
    ig_frac, afrac0 = (int(v) for v in state["gs.frac"])
    fracs_gs = [afrac0] + [layer.afrac_out for layer in gs_layers[:-1]]
    fracs_hs = [layer.afrac_out for layer in hs_layers[:-1]]
    hyper = isinstance(model, ScaleHyperprior)
    inv_gain = state["gs.inv_gain"].double() * 2.0**-ig_frac
    for img in calibration:
        c = min(crop, *img.shape[:2]) // 64 * 64
        if not c:
            continue
        x = torch.from_numpy(img[:c, :c].transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        for q in range(new):
            y = model.analysis(x, q)
            if hyper:
                assert isinstance(model, ScaleHyperprior)
                z_hat = torch.round(model.h_a(y))
                if float(z_hat.abs().max()) > Z_BOUND:
                    raise ValueError(f"quality {q + 1}: hyper-latent beyond the z tables ({Z_BOUND})")
                _, mu = model.hyper_params(z_hat)
                y_hat = torch.round(y - mu) + mu
                peaks = _calibrate(model.h_s, z_hat)[:-1]
                for k, (p, f) in enumerate(zip(peaks, fracs_hs)):
                    if p * 2.0**f >= I.ACT_MAX:
                        raise ValueError(f"quality {q + 1}: h_s layer {k} would clamp ({p:.3g} at 2**-{f})")
            else:
                y_hat = torch.round(y)
            g_in = y_hat * inv_gain[q].float().view(1, -1, 1, 1)
            peaks = [float(g_in.abs().max())] + _calibrate(model.g_s, g_in)[:-1]
            for k, (p, f) in enumerate(zip(peaks, fracs_gs)):
                if p * 2.0**f >= I.ACT_MAX:
                    raise ValueError(f"quality {q + 1}: g_s stage {k} would clamp ({p:.3g} at 2**-{f})")


def _count(state: dict[str, torch.Tensor], prefix: str) -> int:
    """Number of integer layers ``prefix.<i>.*`` in a shipped state."""
    return len({k.split(".")[1] for k in state if k.startswith(prefix + ".") and k.split(".")[1].isdigit()})


def extend_weights(shipped_path: str | Path, ladder_checkpoint: str | Path, out_dir: str | Path,
                   calibration: list[np.ndarray], *, name: str = "hyperprior.pt") -> dict[str, Any]:
    """Write ``out_dir/name`` = the shipped file plus the ladder checkpoint's new rate points, and pin it."""
    ckpt = torch.load(ladder_checkpoint, map_location="cpu", weights_only=True)
    cfg = json.loads(ckpt["config"])
    shipped = torch.load(shipped_path, map_location="cpu", weights_only=True)
    model = build_model(cfg["model"], cfg["n"], cfg["m"], len(cfg["lambdas"]))
    model.load_state_dict(ckpt["model"])
    new = len(cfg["lambdas"]) - int(shipped["meta"][3])
    state = extend_shipped_state(shipped, model, new, calibration)
    return {**write_pinned(state, Path(out_dir), name), "lambdas": cfg["lambdas"], "new": new}


def refresh_scale_tables(src: str | Path, out_dir: str | Path, *, name: str = "hyperprior.pt") -> dict[str, Any]:
    """Rewrite a shipped file with today's Gaussian scale tables (all else unchanged) and pin it.

    The tables depend only on :func:`scale_table` and :func:`gaussian_tables`, not on
    training, so weights whose float checkpoint is lost can still get corrected tables.
    """
    state = torch.load(src, map_location="cpu", weights_only=True)
    _offset, scales = scale_table()
    state.update({f"tab.s.{k}": torch.from_numpy(v) for k, v in gaussian_tables(scales).items()})
    return write_pinned(state, Path(out_dir), name)


def export_checkpoint(checkpoint: str, out_dir: str, calibration: list[np.ndarray], *,
                      name: str | None = None) -> dict[str, Any]:
    """Write ``<name>.pt`` and update ``pins.json`` in ``out_dir``; returns file, bytes, sha256."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = json.loads(ckpt["config"])
    model = build_model(cfg["model"], cfg["n"], cfg["m"], len(cfg["lambdas"]))
    model.load_state_dict(ckpt["model"])
    state = build_shipped_state(model, calibration)
    return {**write_pinned(state, Path(out_dir), f"{name or cfg['model']}.pt"), "lambdas": cfg["lambdas"]}
