"""Turn a float training checkpoint of the recurrent codec into the shipped weights file.

The shipped file is a flat ``{name: tensor}`` state dict holding

* ``meta``: format and :class:`~recodec.codecs.rnn.models.Arch` integers;
* ``enc.*``: the float32 encoder;
* ``dec.*``: the integer decoder (layers of :mod:`recodec.codecs.learned.integer`);
* ``lut.sigmoid`` / ``lut.tanh``: the integer gate tables;
* ``ctx.w`` / ``ctx.lut``: the logistic context model of the code bits (integer weights and
  the logit-to-probability table), fitted to calibration images coded by the integer decoder
  itself; ``ctx.apply``: the per-iteration probability of the apply flags, counted there.
  (The first weights held a count table ``ctx.p1`` instead; their streams still decode.)

Its SHA-256 goes into ``pins.json`` beside it and into every stream header.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recodec.codecs.learned import integer as I
from recodec.codecs.rnn import context
from recodec.codecs.rnn.integer import GATE_FRAC, PRE_FRAC, RECON_FRAC, make_luts
from recodec.codecs.rnn.models import Arch, ConvGRU, RecurrentCodec
from recodec.codecs.rnn.runtime import WEIGHTS_FORMAT, encode_tile_bits, runtime_from_state
from recodec.codecs.weights import write_pinned


def load_float_model(checkpoint: str) -> tuple[RecurrentCodec, dict[str, Any]]:
    """The float model of a training checkpoint (``checkpoint.pt`` or ``best.pt``)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = RecurrentCodec(Arch(**json.loads(state["arch"])))
    model.load_state_dict(state["model"])
    return model.eval(), state


@torch.no_grad()
def _peaks(model: RecurrentCodec, crops: torch.Tensor) -> dict[str, float]:
    """Peak |output| of the decoder's plain convolutions over all iterations of ``crops``."""
    peaks = {"inp": 0.0, "c3": 0.0, "c4": 0.0}
    hooks = [getattr(model.decoder, name).register_forward_hook(
        lambda _m, _i, out, name=name: peaks.__setitem__(name, max(peaks[name], float(F.relu(out).max()))))
        for name in peaks]
    model(crops)
    for h in hooks:
        h.remove()
    return peaks


def _conv_state(prefix: str, conv: torch.nn.Conv2d, afrac_in: int, afrac_out: int, relu: bool) -> dict[str, torch.Tensor]:
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    layer = I.make_conv(conv.weight, bias, afrac_in=afrac_in, afrac_out=afrac_out, stride=conv.stride[0],
                        transposed=False, relu=relu)
    I.check_bounds([layer], in_max=I.ACT_MAX)
    return I.state_of(prefix, layer)


def _gru_state(prefix: str, gru: ConvGRU, afrac_in: int) -> dict[str, torch.Tensor]:
    return {**_conv_state(f"{prefix}.wx", gru.wx, afrac_in, PRE_FRAC, False),
            **_conv_state(f"{prefix}.wh", gru.wh, GATE_FRAC, PRE_FRAC, False)}


def decoder_state(model: RecurrentCodec, crops: torch.Tensor) -> dict[str, torch.Tensor]:
    """Integer decoder tensors, activation scales calibrated on ``crops``."""
    d = model.decoder
    peaks = _peaks(model, crops)
    f_inp, f_c3, f_c4 = (I.act_frac(peaks[k]) for k in ("inp", "c3", "c4"))
    sig, tanh = make_luts()
    return {
        **_conv_state("dec.inp", d.inp, 0, f_inp, True),
        **_gru_state("dec.g1", d.g1, f_inp),
        **_gru_state("dec.g2", d.g2, GATE_FRAC),
        **_conv_state("dec.c3", d.c3, GATE_FRAC, f_c3, True),
        **_conv_state("dec.c4", d.c4, f_c3, f_c4, True),
        **_conv_state("dec.out", d.out, f_c4, RECON_FRAC, False),
        "lut.sigmoid": sig, "lut.tanh": tanh,
    }


def calibration_codes(state: dict[str, torch.Tensor], images: list[np.ndarray],
                      tile: int = 256) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Codes (K, C, h, w) of every whole ``tile`` of ``images``, coded by the integer decoder, and apply-flag counts."""
    rt = runtime_from_state(state, b"\0" * 32)
    a = rt.arch
    codes, applied, blocks = [], np.zeros(a.iterations), np.zeros(a.iterations)
    for img in images:
        h, w = img.shape[:2]
        for top in range(0, h - tile + 1, tile):
            for left in range(0, w - tile + 1, tile):
                coded = encode_tile_bits(rt, img[top:top + tile, left:left + tile], a.iterations)
                codes.append(np.stack([u for u, _ in coded]))
                applied += [f.sum() for _, f in coded]
                blocks += [f.size for _, f in coded]
    return codes, applied, blocks


def fit_table(codes: list[np.ndarray]) -> np.ndarray:
    """Integer P(1) of the first weights' count table (:class:`~recodec.codecs.rnn.context.TableContext`) on ``codes``."""
    iterations, bits = codes[0].shape[:2]
    n = context.table_size(iterations, bits)
    ones, totals = np.zeros(n), np.zeros(n)
    for u in codes:
        for k in range(iterations):
            ctx = context.contexts(k, u[k], u[k - 1] if k else None).ravel()
            totals += np.bincount(ctx, minlength=n)
            ones += np.bincount(ctx, weights=u[k].ravel().astype(np.float64), minlength=n)
    return context.estimate_table(ones, totals)


def _features(codes: list[np.ndarray], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Iteration ``k``'s logistic inputs (C, N, 2C + 1) = [same-iteration +-1, previous +-1, 1] and bits (C, N)."""
    cur = np.concatenate([c[k].reshape(c.shape[1], -1) for c in codes], 1).astype(np.float32) * 2 - 1
    prev = (np.concatenate([c[k - 1].reshape(c.shape[1], -1) for c in codes], 1).astype(np.float32) * 2 - 1
            if k else np.zeros_like(cur))
    bits, n = cur.shape
    mask = np.tril(np.ones((bits, bits), np.float32), -1)  # channel c sees channels < c
    x = np.concatenate([mask[:, None, :] * cur.T[None], np.broadcast_to(prev.T[None], (bits, n, bits)),
                        np.ones((bits, n, 1), np.float32)], 2)
    return torch.from_numpy(x), torch.from_numpy((cur > 0).astype(np.float32))


def fit_logistic(codes: list[np.ndarray], *, l2: float = 1e-5) -> np.ndarray:
    """Integer weights (K, C, 2C + 1) of :class:`~recodec.codecs.rnn.context.LogisticContext` fitted to ``codes``."""
    iterations, bits = codes[0].shape[:2]
    out = np.zeros((iterations, bits, 2 * bits + 1), np.int32)
    for k in range(iterations):
        x, y = _features(codes, k)
        w = torch.zeros(bits, x.shape[2], 1, requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=1, max_iter=80, history_size=10, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(torch.bmm(x, w)[..., 0], y) + l2 * (w ** 2).sum() / bits
            loss.backward()
            return loss

        opt.step(closure)
        q = torch.round(w.detach()[..., 0] * (1 << context.WEIGHT_FRAC))
        out[k] = q.clamp(-context.LOGIT_MAX, context.LOGIT_MAX).numpy().astype(np.int32)
    return out


def build_shipped_state(checkpoint: str, calibration: list[np.ndarray], crop: int = 256) -> dict[str, torch.Tensor]:
    """The shipped flat state dict of a training checkpoint."""
    model, _ = load_float_model(checkpoint)
    a = model.arch
    crops = [img[:crop, :crop] for img in calibration if min(img.shape[:2]) >= crop][:8]
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    state: dict[str, torch.Tensor] = {
        "meta": torch.tensor([WEIGHTS_FORMAT, *asdict(a).values()], dtype=torch.int32),
        **{f"enc.{k}": v.float().contiguous() for k, v in model.encoder.state_dict().items()},
        **decoder_state(model, x),
    }
    codes, applied, blocks = calibration_codes(state, calibration)
    state["ctx.w"] = torch.from_numpy(fit_logistic(codes))
    state["ctx.lut"] = torch.from_numpy(context.logit_table())
    state["ctx.apply"] = torch.from_numpy(context.estimate_table(applied, blocks))
    return state


def export_checkpoint(checkpoint: str, out_dir: str, calibration: list[np.ndarray], *,
                      name: str = "rnn") -> dict[str, Any]:
    """Write ``out_dir/<name>.pt`` and pin its SHA-256 in ``out_dir/pins.json``."""
    return write_pinned(build_shipped_state(checkpoint, calibration), Path(out_dir), f"{name}.pt")
