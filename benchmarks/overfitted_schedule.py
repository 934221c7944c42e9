"""Encoder studies of the ``overfit`` fast preset: schedule, next-grid priming, latent learning-rate gain.

Training data only (never the held-out devset scenes of ``overfitted_rd.py``).  Each variant
overrides fields of the ``fast`` preset and/or patches the encoder module for the fit; the score is
the RD loss of the real stream (``lmbda * 255**2 * MSE / peak**2 + bpp``, bpp over every byte,
peak 255 for photos and the data range for 16-bit scenes), relative to the study's first
variant, and for photos against the best libjpeg-turbo 4:2:0 quality at the same lambda.

* ``schedule``: step count, learning rates, coarse-to-fine start; 512x384 centre crops of the
  first three CLIC 2025 validation photos, lambda 0.002 and 0.01.
* ``priming``: the coarse stages pricing the next grid's zeros through a 64x64 patch weighted as
  the whole grid (``encoder._prime_bits``), the patch counted once, or not at all; 384x384 crops,
  same photos.
* ``arch``: smaller networks (context model, synthesis MLP, residual convolutions), whose
  parameters the stream carries (hundreds of bytes, a quarter of a low-rate photo stream);
  the priming study's crops and lambdas.
* ``noise``: the share of the full-resolution steps trained with additive noise before
  straight-through rounding takes over; the priming study's crops and lambdas.
* ``gain``: the cap on the latents' learning-rate multiplier (``encoder.GAIN_CAP``) on 256x256
  centre crops of the training scenes ``l8_cloudy_B5`` and ``l8_cloudy_B7``, lambda 0.3, 2 and
  12 (at 0.05 and below every variant is the same fit).

Rows append to a JSONL file per study and are skipped when present, so a run resumes; ``--part K/N``
splits the fits between processes (one per core)::

    nohup nice -n 5 env OMP_NUM_THREADS=1 python benchmarks/overfitted_schedule.py run --study gain &
    python benchmarks/overfitted_schedule.py report --study gain

Run by hand (about a minute per 256x256 fit and two per 512x384 fit on one core); the results
are in docs/overfitted.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATA = SHARED / "train" / "clic2025-validation"
LMBDAS = (0.002, 0.01)


@dataclass(frozen=True)
class Variant:
    """One fit recipe: the step count, overrides of the fast preset, and encoder-module patches."""

    iterations: int = 800
    preset: dict[str, Any] = field(default_factory=dict)
    patches: dict[str, Any] = field(default_factory=dict)


#: name -> variant; the first is the reference.
VARIANTS: dict[str, Variant] = {
    "400 steps, rates 0.03/0.003": Variant(400, {"lr": 0.03, "lr_net": 0.003, "coarse": ()}),
    "400 steps, rates 0.03/0.01": Variant(400, {"lr": 0.03, "lr_net": 0.01, "coarse": ()}),
    "400 steps, rates 0.05/0.003": Variant(400, {"lr": 0.05, "lr_net": 0.003, "coarse": ()}),
    "400 steps, rates 0.05/0.01": Variant(400, {"coarse": ()}),
    "800 steps, rates 0.03/0.003": Variant(800, {"lr": 0.03, "lr_net": 0.003, "coarse": ()}),
    "800 steps, rates 0.05/0.01": Variant(800, {"coarse": ()}),
    "+ 1/2 res 30%": Variant(800, {"coarse": ((1, 0.3),)}),
    "+ 1/4 res 10%, 1/2 res 25%": Variant(800, {"coarse": ((2, 0.1), (1, 0.25))}),
    "+ 1/8 5%, 1/4 10%, 1/2 25%": Variant(800, {"coarse": ((3, 0.05), (2, 0.1), (1, 0.25))}),
    "+ 1/4 res 20%, 1/2 res 30% (fast)": Variant(800, {"coarse": ((2, 0.2), (1, 0.3))}),
    "+ 1/8 10%, 1/4 20%, 1/2 30%": Variant(800, {"coarse": ((3, 0.1), (2, 0.2), (1, 0.3))}),
    "+ 1/4 res 30%, 1/2 res 40%": Variant(800, {"coarse": ((2, 0.3), (1, 0.4))}),
}


def _no_priming(model: Any, level: int, gen: Any) -> Any:
    """The coarse stages price nothing of the next grid (the code before session 20)."""
    import torch

    return torch.zeros(())


PRIMING: dict[str, Variant] = {
    "patch weighted as the whole grid (fast)": Variant(),
    "64x64 patch counted once (session 20)": Variant(patches={"PRIME_AS_GRID": False}),
    "no priming": Variant(patches={"_prime_bits": _no_priming}),
}
GAIN: dict[str, Variant] = {
    "gain capped at 4 (fast)": Variant(),
    "gain capped at 2 (session 20)": Variant(patches={"GAIN_CAP": 2.0}),
    "no cap": Variant(patches={"GAIN_CAP": math.inf}),
    "no gain": Variant(patches={"GAIN_CAP": 1.0}),
}
ARCH: dict[str, Variant] = {
    "MLP 7-16-S, 2 convs, context 12-12-12-2 (fast)": Variant(),
    "context model 12-8-8-2": Variant(preset={"arm_hidden": 8}),
    "MLP 7-12-S": Variant(preset={"hidden": (12,)}),
    "1 residual conv": Variant(preset={"convs": 1}),
    "MLP 7-12-S, 1 conv, context 12-8-8-2": Variant(preset={"hidden": (12,), "convs": 1, "arm_hidden": 8}),
}
NOISE: dict[str, Variant] = {
    "noise proxy for 70 % of the full-resolution steps (fast)": Variant(),
    "noise proxy for 50 %": Variant(preset={"noise_fraction": 0.5}),
    "noise proxy for 85 %": Variant(preset={"noise_fraction": 0.85}),
}
#: study -> (images, lambdas, variants, default log)
STUDIES: dict[str, tuple[Callable[[], list[tuple[str, np.ndarray]]], tuple[float, ...], dict[str, Variant], str]] = {}


def crops(height: int = 384, width: int = 512) -> list[tuple[str, np.ndarray]]:
    """(name, RGB centre crop) of the first three CLIC validation photos."""
    from PIL import Image

    out = []
    for path in sorted(DATA.glob("*.png"))[:3]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
        out.append((path.name[:8], np.ascontiguousarray(rgb[top:top + height, left:left + width])))
    return out


def scenes(size: int = 256) -> list[tuple[str, np.ndarray]]:
    """(name, uint16 (size, size, 1) centre crop) of the training scenes l8_cloudy_B5 and l8_cloudy_B7."""
    import tifffile

    out = []
    for name in ("l8_cloudy_B5", "l8_cloudy_B7"):
        arr = tifffile.imread(SHARED / "satellite-train" / f"{name}.tif")
        top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
        out.append((name, np.ascontiguousarray(arr[top:top + size, left:left + size, None])))
    return out


STUDIES.update({
    "schedule": (crops, LMBDAS, VARIANTS, "docs/results/overfitted_schedule.jsonl"),
    "priming": (lambda: crops(384, 384), LMBDAS, PRIMING, "docs/results/overfitted_priming.jsonl"),
    "gain": (scenes, (0.3, 2.0, 12.0), GAIN, "docs/results/overfitted_gain.jsonl"),
    "arch": (lambda: crops(384, 384), LMBDAS, ARCH, "docs/results/overfitted_arch.jsonl"),
    "noise": (lambda: crops(384, 384), LMBDAS, NOISE, "docs/results/overfitted_noise.jsonl"),
})


@contextlib.contextmanager
def patched(variant: Variant) -> Iterator[None]:
    """The encoder module with the variant's preset overrides and patches, restored afterwards."""
    from dataclasses import replace

    from recodec.codecs.overfit import encoder

    default = encoder.PRESETS["fast"]
    saved = {name: getattr(encoder, name) for name in variant.patches}
    encoder.PRESETS["fast"] = replace(default, **variant.preset)
    for name, value in variant.patches.items():
        setattr(encoder, name, value)
    try:
        yield
    finally:
        encoder.PRESETS["fast"] = default
        for name, value in saved.items():
            setattr(encoder, name, value)


def _score(img: np.ndarray, data: bytes, out: np.ndarray, lmbda: float) -> dict[str, float]:
    """bpp, PSNR and the RD loss, with the pipeline's peak (255, or a 16-bit scene's data range)."""
    from recodec.metrics import resolve_peak

    if out.shape != img.shape:  # (H, W) against (H, W, 1) would broadcast into nonsense
        raise ValueError(f"decoded shape {out.shape} is not the image's {img.shape}")
    peak, _ = resolve_peak(img)
    mse = float(((out.astype(np.float64) - img) ** 2).mean())
    bpp = 8 * len(data) / (img.shape[0] * img.shape[1])
    return {"bpp": bpp, "psnr": 10 * np.log10(peak**2 / mse), "loss": lmbda * 255**2 * mse / peak**2 + bpp}


def jpeg_loss(img: np.ndarray, lmbda: float) -> float | None:
    """The smallest RD loss of libjpeg-turbo 4:2:0 over qualities 5..99 at ``lmbda`` (8-bit RGB only)."""
    from recodec.codecs import get_codec

    if img.dtype != np.uint8:
        return None
    jpeg = get_codec("jpeg")
    best = float("inf")
    for q in range(5, 100, 2):
        data = jpeg.encode(img, quality=q, subsampling="4:2:0")
        best = min(best, _score(img, data, jpeg.decode(data), lmbda)["loss"])
    return best


def _log(args: argparse.Namespace) -> Path:
    return Path(args.log or STUDIES[args.study][3])


def jobs(study: str, part: str = "1/1") -> list[tuple[str, np.ndarray, float, str, Variant]]:
    """(image name, image, lambda, variant label, variant) of one study; ``part`` "K/N" keeps every N-th from the K-th."""
    images, lmbdas, variants, _ = STUDIES[study]
    k, n = map(int, part.split("/"))
    if not 1 <= k <= n:
        raise ValueError(f"--part {part}: K must be in 1..N")
    every = [(name, img, lmbda, label, variant) for name, img in images() for lmbda in lmbdas
             for label, variant in variants.items()]
    return every[k - 1::n]


def run(args: argparse.Namespace) -> None:
    """Fit every (variant, image, lambda) of the study not yet in its log."""
    import torch

    from recodec.codecs import get_codec

    torch.set_num_threads(1)
    log = _log(args)
    done = {(r["variant"], r["image"], r["lmbda"]) for r in map(json.loads, log.open())} if log.exists() else set()
    codec = get_codec("overfit")
    for name, img, lmbda, label, variant in jobs(args.study, args.part):
        if (label, name, lmbda) in done:
            continue
        with patched(variant):
            t0 = time.perf_counter()
            data = codec.encode(img, lmbda=lmbda, iterations=variant.iterations)
            seconds = time.perf_counter() - t0
        row = {"study": args.study, "variant": label, "image": name, "lmbda": lmbda, "encode_s": seconds,
               **_score(img, data, codec.decode(data), lmbda), "jpeg_loss": jpeg_loss(img, lmbda)}
        with log.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def report(args: argparse.Namespace) -> None:
    """One Markdown row per variant: mean RD loss against the study's first variant and against JPEG."""
    variants = STUDIES[args.study][2]
    rows = [json.loads(line) for line in _log(args).open()]
    ref = {(r["image"], r["lmbda"]): r["loss"] for r in rows if r["variant"] == next(iter(variants))}
    print("| variant | fits | RD loss vs first row | worst fit | RD loss vs best JPEG | encode s |\n"
          "|---|---|---|---|---|---|")
    for variant in variants:
        rs = [r for r in rows if r["variant"] == variant and (r["image"], r["lmbda"]) in ref]
        if rs:
            vs_ref = [r["loss"] / ref[(r["image"], r["lmbda"])] - 1 for r in rs]
            jpeg = [r["loss"] / r["jpeg_loss"] - 1 for r in rs if r.get("jpeg_loss")]
            vs_jpeg = f"{100 * np.mean(jpeg):+.1f} %" if jpeg else "-"
            secs = np.mean([r["encode_s"] for r in rs])
            print(f"| {variant} | {len(rs)} | {100 * np.mean(vs_ref):+.1f} % | {100 * max(vs_ref):+.1f} % "
                  f"| {vs_jpeg} | {secs:.0f} |")


def main() -> None:
    """Command line: ``run`` (resumable) or ``report``, for one study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("run", "report"))
    parser.add_argument("--study", choices=tuple(STUDIES), default="schedule")
    parser.add_argument("--log", help="JSONL file of the rows (default: the study's file in docs/results/)")
    parser.add_argument("--part", default="1/1", help="K/N: run every N-th fit from the K-th (one process per core)")
    args = parser.parse_args()
    run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
    main()
