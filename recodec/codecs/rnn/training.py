"""Training loop of the recurrent codec: truncated BPTT over the K iterations, resumable.

Loss (Toderici et al. 2016): the mean L1 norm of the residual after every iteration,
summed over iterations, so every prefix of the stream is trained to be a good image.  With
``ms_ssim_weight`` w > 0 each iteration's term is ``L1 + w (1 - MS-SSIM)`` (as many scales as
the crop allows, :func:`recodec.codecs.losses.ms_ssim`): the perceptual objective the 2017 paper reports,
and then ``best.pt`` is chosen by held-out MS-SSIM instead of PSNR.
Truncated BPTT: the K iterations are cut into chunks of ``tbptt`` iterations; each chunk
is back-propagated on its own and the recurrent states and reconstruction are detached
at chunk borders (gradients are accumulated, one optimiser step per batch).

Resumable: the checkpoint holds model, optimiser, step, and the torch and Python RNG
states; it is written every ``checkpoint_seconds`` and when SIGTERM/SIGINT arrives.  The
held-out loss is measured every ``eval_every`` steps and the best model is kept in
``best.pt`` (what gets exported).
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recodec.codecs.crops import random_crops
from recodec.codecs.rnn.models import Arch, RecurrentCodec, binarize
from recodec.precision import resolve_precision


@dataclass
class RnnTrainConfig:
    """One training run of the recurrent codec (recorded in the checkpoint and model card)."""

    steps: int = 100_000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    #: The learning rate halves every ``lr_halving`` steps, counted from ``lr_restart_step``.
    lr_halving: int = 6000
    #: Step at which the schedule (re)starts at ``lr``: a fine-tune restarts it.
    lr_restart_step: int = 0
    #: Weight of (1 - MS-SSIM) beside the L1 term of every iteration (0: L1 only).
    ms_ssim_weight: float = 0.0
    tbptt: int = 4
    seed: int = 0
    checkpoint_seconds: float = 180.0
    eval_every: int = 250
    log_every: int = 50
    #: Autocast precision: "auto" (bf16 on GPUs and on CPUs that compute it natively, else fp32),
    #: "bf16" or "fp32" (:func:`recodec.precision.resolve_precision`).
    precision: str = "auto"
    channels_last: bool = True
    threads: int | None = None
    #: Wall-clock budget of this run (checkpoint and stop after it); None: until ``steps``.
    max_seconds: float | None = None
    bits: int = 32
    iterations: int = 8
    hid: int = 64


def iteration_loss(x: torch.Tensor, x_hat: torch.Tensor, ms_ssim_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, L1) of one iteration's reconstruction: L1, plus ``ms_ssim_weight`` x (1 - MS-SSIM)."""
    err = (x - x_hat).abs().mean()
    if not ms_ssim_weight:
        return err, err
    from recodec.codecs.losses import ms_ssim, scales_for

    score = ms_ssim(x_hat.clamp(0, 1), x, scales=scales_for(min(x.shape[2:])))
    return err + ms_ssim_weight * (1 - score.mean()), err


def tbptt_step(model: RecurrentCodec, x: torch.Tensor, tbptt: int, autocast: bool,
               ms_ssim_weight: float = 0.0) -> list[float]:
    """Forward + backward of one batch with truncated BPTT; returns the per-iteration L1."""
    enc, dec = model.encoder, model.decoder
    es: list[Any] = [None, None]
    ds: list[Any] = [None, None]
    x_hat = torch.full_like(x, 0.5)
    losses: list[float] = []
    k_max = model.arch.iterations
    for start in range(0, k_max, tbptt):
        chunk = 0.0
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            for _ in range(start, min(k_max, start + tbptt)):
                t, es = enc(x - x_hat, es)
                d, ds = dec(binarize(t, True), ds)
                x_hat = x_hat + d.float()
                loss, err = iteration_loss(x, x_hat, ms_ssim_weight)
                chunk = chunk + loss
                losses.append(float(err.detach()))
        chunk.backward()  # type: ignore[union-attr]
        # Truncation: no gradient flows across the chunk border.
        es = [h.detach() for h in es]
        ds = [h.detach() for h in ds]
        x_hat = x_hat.detach()
    return losses


@torch.no_grad()
def evaluate(model: RecurrentCodec, batch: torch.Tensor) -> dict[str, list[float]]:
    """Per-iteration PSNR and MS-SSIM (both dB) of the deterministic (sign) binarizer on a fixed batch."""
    from recodec.codecs.losses import ms_ssim

    model.eval()
    recs, _ = model(batch)
    model.train()
    recs = [r.clamp(0, 1) for r in recs]
    return {"psnr": [float(10 * torch.log10(1 / ((r - batch) ** 2).mean())) for r in recs],
            "ms_ssim_db": [float(-10 * torch.log10(1 - ms_ssim(r, batch, scales=5).mean())) for r in recs]}


def best_metric(config: RnnTrainConfig) -> str:
    """The held-out score that picks ``best.pt``: MS-SSIM (dB) when the loss has it, else PSNR."""
    return "ms_ssim_db" if config.ms_ssim_weight else "psnr"


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a kill never leaves a half-written checkpoint


def _rng_state(rng: random.Random) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": json.dumps(rng.getstate())}


def _restore_rng(state: dict[str, Any], rng: random.Random) -> None:
    torch.set_rng_state(state["torch"])
    py = json.loads(state["python"])
    rng.setstate((py[0], tuple(py[1]), py[2]))


def _stop_on_signals() -> dict[str, bool]:
    """A flag that SIGTERM / SIGINT set (the loop then checkpoints and returns)."""
    stop = {"flag": False}

    def _on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    return stop


def _optimiser_step(model: RecurrentCodec, opt: torch.optim.Optimizer, images: list[np.ndarray],
                    config: RnnTrainConfig, rng: random.Random, step: int, device: str) -> list[float]:
    """One batch: learning-rate schedule, TBPTT forward/backward, clipped Adam step."""
    for g in opt.param_groups:
        g["lr"] = config.lr * 0.5 ** (max(0, step - config.lr_restart_step) // config.lr_halving)
    x = torch.from_numpy(random_crops(images, config.batch_size, config.crop, rng)).to(device)
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt.zero_grad(set_to_none=True)
    bf16 = resolve_precision(config.precision, device) == "bf16"
    losses = tbptt_step(model, x, config.tbptt, bf16, config.ms_ssim_weight)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return losses


#: Settings of one run, never taken from a resumed checkpoint's recipe.
RUNTIME_FIELDS = ("threads", "max_seconds", "checkpoint_seconds", "log_every", "eval_every", "precision",
                  "channels_last")


def resumed_config(config: RnnTrainConfig, saved: str, given: tuple[str, ...]) -> RnnTrainConfig:
    """The checkpoint's recipe (JSON ``saved``), except runtime fields and the fields in ``given``."""
    names = {f.name for f in fields(RnnTrainConfig)}
    recipe = {k: v for k, v in json.loads(saved).items() if k in names}
    keep = {f: getattr(config, f) for f in (*RUNTIME_FIELDS, *given) if f in names}
    return replace(RnnTrainConfig(**recipe), **keep)


def train(images: list[np.ndarray], heldout: list[np.ndarray], out_dir: str,
          config: RnnTrainConfig, *, given: tuple[str, ...] = (), resume: str | None = None) -> dict[str, Any]:
    """Train (or resume from ``resume`` or ``out_dir/checkpoint.pt``); returns a summary dict.

    On resume the checkpoint's recipe (steps, schedule, crops, architecture) wins over
    ``config`` except for :data:`RUNTIME_FIELDS` and the field names in ``given``.

    Over 60 lines on purpose: one loop whose checkpoint closure shares the model, optimiser,
    step and RNG it saves; splitting it would only move that state into an object.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, best_path = out / "checkpoint.pt", out / "best.pt"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    source = Path(resume) if resume else ckpt
    state = torch.load(source, map_location=device, weights_only=True) if source.exists() else None
    if state is not None:
        config = resumed_config(config, state["config"], given)
        if "lr" in given:  # a new rate for a resumed run (a fine-tune): the schedule restarts here
            config = replace(config, lr_restart_step=int(state["step"]))
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    arch = Arch(bits=config.bits, iterations=config.iterations, hid=config.hid)
    model = RecurrentCodec(arch).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, best, spent = 0, -math.inf, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, best, spent = int(state["step"]), float(state["best"]), float(state["seconds"])
        if state.get("best_metric", "psnr") != best_metric(config):
            best = -math.inf  # a fine-tune to another objective: the old best is not comparable
        _restore_rng(state["rng"], rng)
    eval_rng = random.Random(12345)
    eval_batch = torch.from_numpy(random_crops(heldout or images, 8, 256, eval_rng)).to(device)
    stop = _stop_on_signals()
    log = (out / "train_log.jsonl").open("a")
    t_start, t_ckpt, window = time.time() - spent, time.time(), []

    def checkpoint() -> None:
        _save(ckpt, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "best": best, "best_metric": best_metric(config), "seconds": time.time() - t_start,
                     "rng": _rng_state(rng),
                     "arch": json.dumps(asdict(arch)), "config": json.dumps(asdict(config)),
                     "device": device})

    model.train()
    t_run = time.time()
    while step < config.steps and not stop["flag"]:
        if config.max_seconds is not None and time.time() - t_run >= config.max_seconds:
            break
        window.append(_optimiser_step(model, opt, images, config, rng, step, device))
        step += 1
        if step % config.log_every == 0:
            l1 = np.mean(window, axis=0)
            log.write(json.dumps({"step": step, "seconds": round(time.time() - t_start, 1),
                                  "l1_first": round(float(l1[0]), 5), "l1_last": round(float(l1[-1]), 5)}) + "\n")
            log.flush()
            window = []
        if step % config.eval_every == 0:
            scores = evaluate(model, eval_batch)
            psnr = scores["psnr"]
            score = float(np.mean(scores[best_metric(config)]))
            log.write(json.dumps({"step": step, **{f"eval_{k}": [round(p, 3) for p in v]
                                                   for k, v in scores.items()}}) + "\n")
            log.flush()
            if score > best:
                best = score
                _save(best_path, {"model": model.state_dict(), "step": step, "eval_psnr": psnr,
                                  "seconds": time.time() - t_start, "arch": json.dumps(asdict(arch)),
                                  "device": device, "config": json.dumps(asdict(config))})
        if time.time() - t_ckpt > config.checkpoint_seconds:
            checkpoint()
            t_ckpt = time.time()
    checkpoint()
    log.close()
    reason = "signal" if stop["flag"] else "done" if step >= config.steps else "time budget"
    return {"checkpoint": str(ckpt), "best": str(best_path), "steps": step, "device": device,
            "precision": resolve_precision(config.precision, device),
            "seconds": round(time.time() - t_start, 1), "config": asdict(config),
            "stopped": reason, "interrupted": reason == "signal"}
