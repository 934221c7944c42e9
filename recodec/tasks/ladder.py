"""Extend a trained variable-rate model's quality ladder downwards, leaving every existing rate point as it is.

Why: the hyperprior's rate points come from per-quality channel gains on one set of
transforms (Cui et al. 2021), so a lower rate point needs only new gain vectors (encoder
``log_gain`` and decoder ``log_inv_gain`` rows) and, for the factorized codec, new y-density
rows.  Training just those, with every network frozen, costs minutes of CPU instead of the
hours a new ladder would; the existing qualities keep their parameters exactly, and
:func:`recodec.codecs.learned.export.extend_shipped_state` keeps their integer decoder too,
so they decode to the same pixels as before.

New rates go *below* the lowest one and are numbered first (quality 1 stays the lowest rate):
the old quality ``q`` becomes ``q + k`` for ``k`` new points.

    python -m recodec.tasks.ladder /work/shared/data/train OUT --lambda 0.0004 --lambda 0.0009
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from recodec.codecs.crops import random_crops
from recodec.precision import resolve_precision
from recodec.tasks.train import (
    TrainConfig, _device_name, config_from_json, list_images, load_rgb, rd_loss, stop_on_signals,
)
from recodec.tasks import train as T

#: State-dict keys whose first dimension is indexed by quality (rows) or by quality x channel.
QUALITY_ROWS = ("log_gain", "log_inv_gain")
DENSITY_PREFIX = "density_y."


def _per_quality(key: str) -> bool:
    return key in QUALITY_ROWS or key.startswith(DENSITY_PREFIX)


def extended_state(model_state: dict[str, Any], m: int, new: int) -> dict[str, Any]:
    """``model_state`` with ``new`` quality rows prepended to every per-quality tensor.

    Initial values: gains extrapolated linearly per channel from the two lowest qualities
    (in log space, one ladder step per new point), y densities copied from the lowest quality.
    """
    import torch

    out = dict(model_state)
    for key in QUALITY_ROWS:
        old = model_state[key]
        step = old[0] - old[1]
        out[key] = torch.cat([(old[0] + step * (new - i))[None] for i in range(new)] + [old], dim=0)
    for key, old in model_state.items():
        if key.startswith(DENSITY_PREFIX):
            lowest = old[:m]
            out[key] = torch.cat([lowest] * new + [old], dim=0)
    return out


def extended_optimizer(opt_state: dict[str, Any], params: list[tuple[str, Any]], m: int, new: int) -> dict[str, Any]:
    """An Adam state dict for the extended model: zero moments for the new rows, old ones kept.

    Why: the training checkpoint must stay resumable with the whole ladder; parameters are
    indexed by their position in ``model.parameters()``, which extending does not change.
    """
    import torch

    state = {"param_groups": opt_state["param_groups"], "state": {}}
    for idx, moments in opt_state["state"].items():
        name, _ = params[int(idx)]
        if not _per_quality(name):
            state["state"][idx] = moments
            continue
        rows = new if name in QUALITY_ROWS else new * m
        state["state"][idx] = {k: (torch.cat([torch.zeros_like(v[:1]).repeat(rows, *[1] * (v.dim() - 1)), v])
                                   if torch.is_tensor(v) and v.dim() > 0 else v)
                               for k, v in moments.items()}
    return state


def extend_checkpoint(src: str | Path, lambdas: tuple[float, ...]) -> tuple[Any, TrainConfig, dict[str, Any]]:
    """(extended float model, its config, the source checkpoint) for new ``lambdas`` below the ladder."""
    import torch

    from recodec.codecs.learned.models import build_model

    state = torch.load(src, map_location="cpu", weights_only=True)
    config = config_from_json(state["config"])
    lambdas = tuple(sorted(lambdas))
    if not lambdas or lambdas[-1] >= config.lambdas[0]:
        raise ValueError(f"new lambdas must lie below the lowest one ({config.lambdas[0]}), got {lambdas}")
    config = replace(config, lambdas=lambdas + tuple(config.lambdas))
    model = build_model(config.model, config.n, config.m, len(config.lambdas))
    model.load_state_dict(extended_state(state["model"], config.m, len(lambdas)))
    return model, config, state


def _freeze_all_but_new(model: Any, m: int, new: int) -> list[Any]:
    """Trainable parameters (the new rows only: gradients of old rows are zeroed by hooks)."""
    import torch

    trainable = []
    for name, p in model.named_parameters():
        if not _per_quality(name):
            p.requires_grad_(False)
            continue
        rows = new if name in QUALITY_ROWS else new * m
        mask = torch.zeros_like(p)
        mask[:rows] = 1.0
        p.register_hook(lambda g, mask=mask: g * mask)
        trainable.append(p)
    return trainable


def train_new_qualities(data: str, out_dir: str, src: str, lambdas: tuple[float, ...], *, steps: int = 1500,
                        batch_size: int = 8, crop: int = 128, lr: float = 5e-3, seed: int = 0,
                        precision: str = "auto", max_minutes: float | None = None,
                        checkpoint_minutes: float = 3.0, log_every: int = 50) -> dict[str, Any]:
    """Train the new rate points' gains and y densities (all else frozen); resumes ``out_dir/ladder.pt``.

    Loss: the normal rate-distortion loss of :func:`recodec.tasks.train.rd_loss` at each new
    point's lambda (points drawn at random per step), decoder input straight-through rounded
    as at the end of the main schedule.  Returns a summary; the checkpoint holds the extended
    model, this run's optimiser, step, RNG and the stage record.
    """
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "ladder.pt"
    model, config, source = extend_checkpoint(src, lambdas)
    new = len(lambdas)
    old_rows = {k: v.clone() for k, v in model.state_dict().items() if _per_quality(k)}
    trainable = _freeze_all_but_new(model, config.m, new)
    opt = torch.optim.Adam(trainable, lr=lr)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    step, stages = 0, []
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        step, stages = int(saved["step"]), json.loads(saved["stages"])
        rng.setstate((3, tuple(int(v) for v in saved["rng_python"]), None))
        torch.set_rng_state(saved["rng_torch"])
    images = [load_rgb(u) for u in list_images(data, split="train")]
    stage = {"from_step": step, "to_step": step, "device": _device_name("cpu"), "precision": resolve_precision(precision, "cpu"),
             "threads": torch.get_num_threads(), "batch": batch_size, "crop": crop, "seconds": 0.0,
             "pixels": 0, "ladder_extension": list(lambdas),
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stages.append(stage)
    model.train()
    model.ste = True
    t0 = last = time.time()
    log = (out / "ladder_log.jsonl").open("a")
    window: list[tuple[float, float]] = []

    def save(status: str) -> None:
        stage.update(to_step=step, status=status, seconds=round(time.time() - t0, 1),
                     pixels=(step - stage["from_step"]) * batch_size * crop**2)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                 "stages": json.dumps(stages), "config": json.dumps(asdict(config)),
                 "rng_python": torch.tensor(rng.getstate()[1], dtype=torch.int64),
                 "rng_torch": torch.get_rng_state()}
        tmp = ckpt.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt)

    status = "done"
    with stop_on_signals():
        while step < steps:
            if T._STOP["signal"] is not None:
                status = f"signal {T._STOP['signal']}"
                break
            if max_minutes is not None and time.time() - t0 > 60 * max_minutes:
                status = "time budget"
                break
            for g in opt.param_groups:
                g["lr"] = lr * 0.3 ** sum(step >= f * steps for f in (0.6, 0.85))
            q = rng.randrange(new)
            x = torch.from_numpy(random_crops(images, batch_size, crop, rng))
            loss, bpp, mse = rd_loss(model, x, q, config.lambdas[q], precision)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            window.append((q, bpp.item(), mse.item()))
            if step % log_every == 0:
                for qq in range(new):
                    pts = [(b, e) for k, b, e in window if k == qq]
                    if pts:
                        log.write(json.dumps({"step": step, "quality": qq + 1, "bpp": round(float(np.mean(
                            [b for b, _ in pts])), 4), "psnr": round(float(np.mean(
                            [10 * math.log10(1 / max(e, 1e-10)) for _, e in pts])), 3),
                            "seconds": round(time.time() - t0, 1)}) + "\n")
                log.flush()
                window = []
            if time.time() - last > 60 * checkpoint_minutes:
                save("running")
                last = time.time()
    # The old rows never move (their gradients are masked); restore them bit for bit anyway.
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if _per_quality(k):
                rows = new if k in QUALITY_ROWS else new * config.m
                v[rows:] = old_rows[k][rows:]
    save(status)
    log.close()
    return {"checkpoint": str(ckpt), "step": step, "status": status, "lambdas": list(config.lambdas),
            "stages": stages, "source_step": int(source.get("step", 0))}


def write_training_state(ladder_ckpt: str | Path, src: str | Path, dest: str | Path) -> dict[str, Any]:
    """The whole ladder as a resumable training checkpoint (``recodec train --resume``) at ``dest``.

    Model: the extended one of ``ladder_ckpt``; optimiser, step, RNG: the source's, with zero
    moments for the new rows; stages: the source's plus this extension's.
    """
    import torch

    from recodec.codecs.learned.models import build_model

    src_state = torch.load(src, map_location="cpu", weights_only=True)
    lad = torch.load(ladder_ckpt, map_location="cpu", weights_only=True)
    config = config_from_json(lad["config"])
    new = len(config.lambdas) - len(config_from_json(src_state["config"]).lambdas)
    model = build_model(config.model, config.n, config.m, len(config.lambdas))
    model.load_state_dict(lad["model"])
    params = list(model.named_parameters())
    stages = json.loads(src_state.get("stages", "[]")) + [
        {**s, "from_step": int(src_state.get("step", 0)), "to_step": int(src_state.get("step", 0)),
         "ladder_steps": s["to_step"] - s["from_step"]} for s in json.loads(lad["stages"])]
    state = {**src_state, "model": lad["model"], "config": json.dumps(asdict(config)),
             "optimizer": extended_optimizer(src_state["optimizer"], params, config.m, new),
             "stages": json.dumps(stages)}
    tmp = Path(dest).with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, dest)
    return {"dest": str(dest), "lambdas": list(config.lambdas), "stages": len(stages)}


def main(argv: list[str] | None = None) -> None:
    """Command line: train new rate points below the ladder of a training checkpoint."""
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--from", dest="src", default=str(Path(__file__).resolve().parents[1] / "codecs" / "learned"
                                                      / "train_state" / "hyperprior.ckpt"))
    p.add_argument("--lambda", dest="lambdas", type=float, action="append", required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = train_new_qualities(args.data, args.out, args.src, tuple(args.lambdas), steps=args.steps,
                                  lr=args.lr, max_minutes=args.max_minutes)
    print(json.dumps({k: v for k, v in summary.items() if k != "stages"}), flush=True)


if __name__ == "__main__":
    main()
