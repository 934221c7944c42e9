"""Optimisation-schedule study of the ``overfit`` fast preset: step count, learning rates, coarse-to-fine start.

Training data only (never the held-out devset photos of ``overfitted_rd.py``): 512x384 centre crops
of the first three CLIC 2025 validation photos, lambda 0.002 and 0.01.  Each variant overrides
fields of the ``fast`` preset; the score is the RD loss of the real stream
(``lmbda * MSE(8-bit) + bpp``, bpp over every byte), relative to the first variant, and against
the best libjpeg-turbo 4:2:0 quality at the same lambda.  Rows append to a JSONL file and are
skipped when present, so the run resumes::

    nohup nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/overfitted_schedule.py run &
    python benchmarks/overfitted_schedule.py report

Run by hand (about 8 minutes per variant on one core); the results are in docs/overfitted.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "clic2025-validation"
LMBDAS = (0.002, 0.01)
#: name -> (iterations, overrides of the fast preset); the first is the reference.
VARIANTS: dict[str, tuple[int, dict[str, Any]]] = {
    "400 steps, rates 0.03/0.003": (400, {"lr": 0.03, "lr_net": 0.003, "coarse": ()}),
    "400 steps, rates 0.03/0.01": (400, {"lr": 0.03, "lr_net": 0.01, "coarse": ()}),
    "400 steps, rates 0.05/0.003": (400, {"lr": 0.05, "lr_net": 0.003, "coarse": ()}),
    "400 steps, rates 0.05/0.01": (400, {"coarse": ()}),
    "800 steps, rates 0.03/0.003": (800, {"lr": 0.03, "lr_net": 0.003, "coarse": ()}),
    "800 steps, rates 0.05/0.01": (800, {"coarse": ()}),
    "+ 1/2 res 30%": (800, {"coarse": ((1, 0.3),)}),
    "+ 1/4 res 10%, 1/2 res 25%": (800, {"coarse": ((2, 0.1), (1, 0.25))}),
    "+ 1/8 5%, 1/4 10%, 1/2 25%": (800, {"coarse": ((3, 0.05), (2, 0.1), (1, 0.25))}),
    "+ 1/4 res 20%, 1/2 res 30% (fast)": (800, {"coarse": ((2, 0.2), (1, 0.3))}),
    "+ 1/8 10%, 1/4 20%, 1/2 30%": (800, {"coarse": ((3, 0.1), (2, 0.2), (1, 0.3))}),
    "+ 1/4 res 30%, 1/2 res 40%": (800, {"coarse": ((2, 0.3), (1, 0.4))}),
}


def crops() -> list[tuple[str, np.ndarray]]:
    """(name, 512x384 RGB centre crop) of the first three CLIC validation photos."""
    from PIL import Image

    out = []
    for path in sorted(DATA.glob("*.png"))[:3]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[0] // 2, rgb.shape[1] // 2
        out.append((path.name[:8], np.ascontiguousarray(rgb[h - 192:h + 192, w - 256:w + 256])))
    return out


def _score(img: np.ndarray, data: bytes, out: np.ndarray, lmbda: float) -> dict[str, float]:
    mse = float(((out.astype(np.float64) - img) ** 2).mean())
    bpp = 8 * len(data) / (img.shape[0] * img.shape[1])
    return {"bpp": bpp, "psnr": 10 * np.log10(255**2 / mse), "loss": lmbda * mse + bpp}


def jpeg_loss(img: np.ndarray, lmbda: float) -> float:
    """The smallest RD loss of libjpeg-turbo 4:2:0 over qualities 5..99 at ``lmbda``."""
    from recodec.codecs import get_codec

    jpeg = get_codec("jpeg")
    best = float("inf")
    for q in range(5, 100, 2):
        data = jpeg.encode(img, quality=q, subsampling="4:2:0")
        best = min(best, _score(img, data, jpeg.decode(data), lmbda)["loss"])
    return best


def run(args: argparse.Namespace) -> None:
    """Fit every (variant, crop, lambda) not yet in the log."""
    from dataclasses import replace

    import torch

    from recodec.codecs import get_codec
    from recodec.codecs.overfit import encoder

    torch.set_num_threads(1)
    log = Path(args.log)
    done = {(r["variant"], r["image"], r["lmbda"]) for r in map(json.loads, log.open())} if log.exists() else set()
    default, codec = encoder.PRESETS["fast"], get_codec("overfit")
    for name, img in crops():
        for lmbda in LMBDAS:
            for variant, (steps, overrides) in VARIANTS.items():
                if (variant, name, lmbda) in done:
                    continue
                encoder.PRESETS["fast"] = replace(default, **overrides)
                try:
                    t0 = time.perf_counter()
                    data = codec.encode(img, lmbda=lmbda, iterations=steps)
                    seconds = time.perf_counter() - t0
                finally:
                    encoder.PRESETS["fast"] = default
                row = {"variant": variant, "image": name, "lmbda": lmbda, "encode_s": seconds,
                       **_score(img, data, codec.decode(data), lmbda), "jpeg_loss": jpeg_loss(img, lmbda)}
                with log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def report(args: argparse.Namespace) -> None:
    """One Markdown row per variant: mean RD loss against the reference variant and against JPEG."""
    rows = [json.loads(line) for line in Path(args.log).open()]
    ref = {(r["image"], r["lmbda"]): r["loss"] for r in rows if r["variant"] == next(iter(VARIANTS))}
    print("| variant | fits | RD loss vs first row | RD loss vs best JPEG | encode s (512x384) |\n|---|---|---|---|---|")
    for variant in VARIANTS:
        rs = [r for r in rows if r["variant"] == variant and (r["image"], r["lmbda"]) in ref]
        if rs:
            vs_ref = np.mean([r["loss"] / ref[(r["image"], r["lmbda"])] - 1 for r in rs])
            vs_jpeg = np.mean([r["loss"] / r["jpeg_loss"] - 1 for r in rs])
            secs = np.mean([r["encode_s"] for r in rs])
            print(f"| {variant} | {len(rs)} | {100 * vs_ref:+.1f} % | {100 * vs_jpeg:+.1f} % | {secs:.0f} |")


def main() -> None:
    """Command line: ``run`` (resumable) or ``report``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--log", default="docs/results/overfitted_schedule.jsonl")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
