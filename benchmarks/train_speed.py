"""Training throughput of the learned codecs: precision, memory format, torch.compile, crop and batch.

    python benchmarks/train_speed.py --threads 1 --out docs/results/train_speed.json

Part 1 (speed): optimiser steps/s and pixels/s of the shipped architecture (hyperprior,
N=64, M=96, 6 qualities) with the real training step (:func:`recodec.tasks.train.train_step`)
for each setting; rounds alternate between settings so that load from other jobs hits all
of them alike, and each setting reports its best round.  On a CPU shared with other jobs
wall time mostly measures the scheduler, so with one thread the figures use the process's
CPU time (``time.process_time``: what the step costs, whatever else runs); wall-clock
figures are reported beside them (and are the ones used on a GPU).  The first row is the setting the
shipped weights were trained with (fp32, NCHW, eager, 8 x 128^2).

Part 2 (does it train as well): from the same initial weights and the same crops, train
each candidate for the same number of pixels and report the held-out loss
(``lambda * 255^2 * MSE + bpp`` averaged over the qualities, float model, rounded
latents, fp32) on fixed held-out crops.  bf16 is for training only: the loss is measured
in fp32, and the integer decoder never sees bf16.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"

#: (name, precision, channels_last, compile, batch, crop)
SETTINGS = [
    ("shipped: fp32 NCHW 8x128", "fp32", False, False, 8, 128),
    ("fp32 channels-last 8x128", "fp32", True, False, 8, 128),
    ("bf16 NCHW 8x128", "bf16", False, False, 8, 128),
    ("bf16 channels-last 8x128", "bf16", True, False, 8, 128),
    ("bf16 channels-last 16x128", "bf16", True, False, 16, 128),
    ("bf16 channels-last 32x64", "bf16", True, False, 32, 64),
    ("bf16 channels-last 4x256", "bf16", True, False, 4, 256),
]
COMPILED = ("bf16 channels-last compiled 8x128", "bf16", True, True, 8, 128)


def load_images(limit: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training images, held-out images) from the shared training folder (noise if absent)."""
    from recodec.tasks.train import list_images, load_rgb

    if not DATA.is_dir():
        rng = np.random.default_rng(0)
        noise = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(4)]
        return noise, noise[:2]
    train = [load_rgb(u) for u in list_images(str(DATA), split="train")[:limit]]
    held = [load_rgb(u) for u in list_images(str(DATA), split="heldout")]
    return train, held


#: Index of CompressAI's lowest lambda (0.0018) in the shipped ladder (3 points were added below it),
#: and of the mid-ladder lambda 0.013 these timings have always used.
LOW, Q4 = 3, 6


def make_model(device: str, channels_last: bool, seed: int = 0, start: str | None = None):
    """The shipped architecture, same initial weights for every setting (random, or ``start``'s)."""
    import torch

    from recodec.codecs.learned.models import build_model

    from recodec.tasks.train import DEFAULT_LAMBDAS

    torch.manual_seed(seed)
    model = build_model("hyperprior", 64, 96, len(DEFAULT_LAMBDAS))
    if start:
        model.load_state_dict(torch.load(start, map_location="cpu", weights_only=True)["model"])
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def batch_of(images: list[np.ndarray], batch: int, crop: int, rng: random.Random, device: str, cl: bool):
    """One random-crop batch on ``device`` in the chosen memory format."""
    import torch

    from recodec.codecs.crops import random_crops

    x = torch.from_numpy(random_crops(images, batch, crop, rng)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if cl else x


def time_setting(setting: tuple, images: list[np.ndarray], device: str, steps: int) -> dict[str, float]:
    """Median seconds per step of one setting after warm-up (compile time reported apart)."""
    import torch

    from recodec.tasks.train import DEFAULT_LAMBDAS, train_step

    name, precision, cl, compiled, batch, crop = setting
    model = make_model(device, cl)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    step = torch.compile(train_step) if compiled else train_step
    rng = random.Random(0)
    t = time.perf_counter()
    for _ in range(2):  # warm-up (and compilation)
        step(model, opt, batch_of(images, batch, crop, rng, device, cl), Q4, DEFAULT_LAMBDAS[Q4], precision)
    warm = time.perf_counter() - t
    wall, cpu = [], []
    for i in range(steps):
        x = batch_of(images, batch, crop, rng, device, cl)
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        q = (i % 6) + LOW  # the six CompressAI lambdas, as before the ladder was extended downwards
        step(model, opt, x, q, DEFAULT_LAMBDAS[q], precision)
        if device == "cuda":
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    use_cpu = device == "cpu" and torch.get_num_threads() == 1
    sec = float(np.median(cpu if use_cpu else wall))
    return {"setting": name, "clock": "cpu" if use_cpu else "wall", "seconds_per_step": sec, "steps_s": 1 / sec,
            "mpix_s": batch * crop * crop / sec / 1e6, "wall_seconds_per_step": float(np.median(wall)),
            "warmup_s": warm}


def speed_table(images: list[np.ndarray], device: str, settings: list[tuple], steps: int, rounds: int) -> list[dict]:
    """Best round of every setting, rounds interleaved across settings."""
    best: dict[str, dict] = {}
    for _ in range(rounds):
        for s in settings:
            r = time_setting(s, images, device, steps)
            if s[0] not in best or r["steps_s"] > best[s[0]]["steps_s"]:
                best[s[0]] = r
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    base = best[settings[0][0]]["mpix_s"]
    rows = [best[s[0]] for s in settings]
    for r in rows:
        r["speedup_vs_shipped"] = r["mpix_s"] / base
    return rows


def quality_check(images: list[np.ndarray], held: list[np.ndarray], device: str, settings: list[tuple],
                  pixels: int, start: str | None = None, lr: float = 1e-3) -> list[dict]:
    """Held-out loss after training each setting for ``pixels`` pixels from the same start."""
    import torch

    from recodec.tasks.train import DEFAULT_LAMBDAS, _eval_batch, heldout_loss, train_step

    eval_batch = _eval_batch(held, device)
    rows = []
    for name, precision, cl, _compiled, batch, crop in settings:
        model = make_model(device, cl, start=start)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        rng = random.Random(0)
        torch.manual_seed(0)
        steps = max(1, pixels // (batch * crop * crop))
        t = time.perf_counter()
        for i in range(steps):
            q = rng.randrange(len(DEFAULT_LAMBDAS))
            train_step(model, opt, batch_of(images, batch, crop, rng, device, cl), q, DEFAULT_LAMBDAS[q], precision)
        result = heldout_loss(model, eval_batch, DEFAULT_LAMBDAS)
        rows.append({"setting": name, "steps": steps, "pixels": steps * batch * crop * crop,
                     "heldout_loss": result["loss"], "seconds": time.perf_counter() - t,
                     "points": result["points"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "points"}), flush=True)
    return rows


def gradient_check(images: list[np.ndarray], start: str, device: str) -> list[dict]:
    """bf16 vs fp32 at a trained state: same batch and noise; loss ratio and gradient cosine."""
    import torch

    from recodec.tasks.train import DEFAULT_LAMBDAS, rd_loss

    rng = random.Random(0)
    rows = []
    for q in (LOW, Q4, LOW + 5):
        x = batch_of(images, 8, 128, rng, device, False)
        grads, losses = {}, {}
        for precision, cl in (("fp32", False), ("bf16", True)):
            model = make_model(device, cl, start=start)
            torch.manual_seed(1)  # the same quantisation noise in both passes
            loss, _, _ = rd_loss(model, x.contiguous(memory_format=torch.channels_last) if cl else x, q,
                                 DEFAULT_LAMBDAS[q], precision)
            loss.backward()
            grads[precision] = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
            losses[precision] = float(loss.detach())
        cos = torch.nn.functional.cosine_similarity(grads["fp32"], grads["bf16"], dim=0)
        rows.append({"quality": q + 1, "loss_fp32": losses["fp32"], "loss_bf16": losses["bf16"],
                     "gradient_cosine": float(cos)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    """Command-line entry point."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    ap.add_argument("--quality-mpix", type=float, default=40.0,
                    help="megapixels each candidate trains for in the quality check (0: skip)")
    ap.add_argument("--images", type=int, default=60, help="training images loaded")
    ap.add_argument("--quality-from", default=None,
                    help="checkpoint whose weights the quality check starts from (default: random init)")
    ap.add_argument("--quality-lr", type=float, default=1e-3)
    ap.add_argument("--quality-settings", default="0,3,5", help="indices into the settings table")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--grad-check", action="store_true",
                    help="with --quality-from: bf16 vs fp32 loss and gradient cosine on one batch")
    ap.add_argument("--out", default=None, help="write the results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images, held = load_images(args.images)
    settings = SETTINGS + ([COMPILED] if args.compile else [])
    result: dict = {"device": args.device, "threads": args.threads, "torch": torch.__version__}
    if not args.skip_speed:
        result["speed"] = speed_table(images, args.device, settings, args.steps, args.rounds)
    if args.quality_mpix:
        candidates = [SETTINGS[int(i)] for i in args.quality_settings.split(",")]
        result["quality"] = quality_check(images, held, args.device, candidates, int(args.quality_mpix * 1e6),
                                          args.quality_from, args.quality_lr)
        result["quality_from"], result["quality_lr"] = args.quality_from, args.quality_lr
    if args.grad_check and args.quality_from:
        result["gradient_check"] = gradient_check(images, args.quality_from, args.device)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
