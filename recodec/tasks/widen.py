"""Widen a trained model's latent (M channels) without starting over: the autoencoder's ceiling is M.

Why: fed its *unquantised* latent, the shipped hyperprior (N=64, M=96) reconstructs no better than
about 31.6 dB at any quality (``benchmarks/learned_ceiling.py``, "continuous").  96 latent values
per 16x16x3 block of pixels is the bottleneck: the best 96 of its 768 DCT coefficients, chosen per
block, give about 32 dB on the same photo, and 192 give about 36.5 (docs/learned.md).  CompressAI's
configurations use M=192 (low rates) and M=320 (high rates).  Widening M costs little compute
(only the last layer of ``g_a``, the first of ``g_s`` and the hyper networks at 1/16 and 1/64
resolution grow), and starting from the trained state keeps what it learned:

* ``g_a``'s last convolution gains ``new`` output channels and ``g_s``'s first ``new`` input
  channels, both small and random (a zero on either side would sit on a saddle: no gradient
  reaches the other), so the reconstruction moves by little at first;
* ``h_a`` ignores the new channels at first (zero input weights), so the hyper-latent is unchanged;
* ``h_s`` predicts a small scale and zero mean for them (zero weights, biases set), so a latent that
  stays near 0 costs almost nothing;
* gains: each quality's mean log gain; factorized y densities: copies of the quality's first channel.

The result is a training checkpoint without optimizer state (``recodec train --resume`` starts a
fresh Adam at the saved step, keeping the schedule) whose config has the new ``m``.

    python -m recodec.tasks.widen recodec/codecs/learned/train_state/hyperprior.ckpt OUT.ckpt --m 192
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

#: Scale that ``h_s`` predicts for the new channels at first (the smallest it can): a latent rounding to 0 costs ~0 bits.
NEW_SCALE = 0.11
#: Standard deviation of the new weights, relative to the existing weights of the same layer.
NEW_WEIGHT_SCALE = 0.05


def _small_like(ref: Any, shape: tuple[int, ...], gen: Any) -> Any:
    import torch

    return torch.randn(shape, generator=gen) * float(ref.std()) * NEW_WEIGHT_SCALE


def widened_state(state: dict[str, Any], m: int, qualities: int, new: int, *, seed: int = 0) -> dict[str, Any]:
    """``state`` (a hyperprior's state dict with M = ``m``) with M = ``m + new`` (see the module docstring)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = dict(state)
    w, b = state["g_a.6.weight"], state["g_a.6.bias"]  # conv(n, m): (m, n, 5, 5)
    out["g_a.6.weight"] = torch.cat([w, _small_like(w, (new, *w.shape[1:]), gen)])
    out["g_a.6.bias"] = torch.cat([b, torch.zeros(new)])
    w = state["g_s.0.weight"]  # deconv(m, n): (m, n, 5, 5)
    out["g_s.0.weight"] = torch.cat([w, _small_like(w, (new, *w.shape[1:]), gen)])
    w = state["h_a.0.weight"]  # conv(m, n, 3, 1): (n, m, 3, 3)
    out["h_a.0.weight"] = torch.cat([w, torch.zeros(w.shape[0], new, *w.shape[2:])], dim=1)
    w, b = state["h_s.4.weight"], state["h_s.4.bias"]  # conv(n, 2m, 3, 1): [log scale (m), mean (m)]
    zeros_w = torch.zeros(new, *w.shape[1:])
    out["h_s.4.weight"] = torch.cat([w[:m], zeros_w, w[m:], zeros_w])
    out["h_s.4.bias"] = torch.cat([b[:m], torch.full((new,), math.log(NEW_SCALE)), b[m:], torch.zeros(new)])
    for key in ("log_gain", "log_inv_gain"):
        g = state[key]
        out[key] = torch.cat([g, g.mean(dim=1, keepdim=True).expand(-1, new)], dim=1)
    for key, t in state.items():
        if key.startswith("density_y."):  # (qualities * m, ...): one block of m channels per quality
            blocks = t.reshape(qualities, m, *t.shape[1:])
            extra = blocks[:, :1].expand(-1, new, *t.shape[1:])
            out[key] = torch.cat([blocks, extra], dim=1).reshape(qualities * (m + new), *t.shape[1:]).clone()
    return out


def widen_checkpoint(src: str | Path, dst: str | Path, m: int) -> dict[str, Any]:
    """Write ``dst``: the training checkpoint ``src`` with its latent widened to ``m`` channels."""
    import torch

    from recodec.codecs.learned.models import build_model
    from recodec.tasks.train import config_from_json, save_atomic

    state = torch.load(src, map_location="cpu", weights_only=True)
    config = config_from_json(state["config"])
    if config.model != "hyperprior" or m <= config.m:
        raise ValueError(f"widen: needs a hyperprior checkpoint with M < {m}; got {config.model} M={config.m}")
    model_state = widened_state(state["model"], config.m, len(config.lambdas), m - config.m)
    build_model(config.model, config.n, m, len(config.lambdas)).load_state_dict(model_state)  # shapes check
    stages = json.loads(state.get("stages", "[]"))
    stages.append({"widened": f"M {config.m} -> {m} at step {state.get('step', 0)} (recodec.tasks.widen)",
                   "from_step": int(state.get("step", 0)), "to_step": int(state.get("step", 0))})
    out = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    out.update(model=model_state, config=json.dumps(asdict(replace(config, m=m))), stages=json.dumps(stages),
               best=float("inf"))
    save_atomic(out, dst)
    return {"from_m": config.m, "m": m, "step": int(state.get("step", 0)), "path": str(dst)}


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--m", type=int, default=192, help="latent channels after widening")
    args = ap.parse_args()
    print(json.dumps(widen_checkpoint(args.checkpoint, args.out, args.m)))


if __name__ == "__main__":
    main()
