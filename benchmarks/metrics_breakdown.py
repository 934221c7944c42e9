"""Where one image's metric time goes: pointwise pass, planar conversion, SSIM scales, down-sampling.

CPU milliseconds of this thread (one torch thread), eager or compiled kernels, on a 1024x1024 RGB
tile of a devset photo against a +-3 noisy copy:

    RECODEC_COMPILE=sync python benchmarks/metrics_breakdown.py
    RECODEC_COMPILE=0 python benchmarks/metrics_breakdown.py

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset" / "photo_coffee.png"


def cpu_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Mean CPU milliseconds of ``fn`` over ``repeats`` calls, after one warm-up call."""
    fn()
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats * 1e3


def test_images(side: int) -> tuple[np.ndarray, np.ndarray]:
    """A side x side RGB tile of the devset photo (noise when absent) and a +-3 noisy copy."""
    rng = np.random.default_rng(0)
    if PHOTO.exists():
        from PIL import Image

        with Image.open(PHOTO) as im:
            photo = np.asarray(im.convert("RGB"))
        ref = np.tile(photo, (side // photo.shape[0] + 1, side // photo.shape[1] + 1, 1))[:side, :side].copy()
    else:
        ref = rng.integers(0, 256, (side, side, 3)).astype(np.uint8)
    dec = np.clip(ref.astype(int) + rng.integers(-3, 4, ref.shape), 0, 255).astype(np.uint8)
    return ref, dec


def main() -> None:
    """Print one Markdown table row per stage."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    import torch

    from recodec import metrics as M

    torch.set_num_threads(1)
    ref, dec = test_images(args.side)
    dev, r, d = torch.device("cpu"), ref[None], dec[None]
    x, y = M._planar(r, dev), M._planar(d, dev)
    peak, taps = torch.tensor([255.0]).view(1, 1, 1, 1), M._gaussian(M.WIN_SIZE)
    stages = {
        "compute_metrics (all)": lambda: M.compute_metrics(ref, dec),
        "pointwise pass (MSE, max error, SAM)": lambda: M._pointwise(r, d, None, dev, torch.float32),
        "planar float32 conversion (both images)": lambda: (M._planar(r, dev), M._planar(d, dev)),
        "SSIM, full-resolution scale": lambda: M._ssim_scale(x, y, None, peak, taps),
        "down-sampling to scale 2 (both images)": lambda: (M._down(x), M._down(y)),
        "SSIM + MS-SSIM, all five scales": lambda: M._ssim_ms_ssim(x, y, None, peak, 5, M.WIN_SIZE),
    }
    print(f"| stage ({args.side}x{args.side} RGB) | CPU ms |\n|---|---|")
    for name, fn in stages.items():
        print(f"| {name} | {cpu_ms(fn, args.repeats):.1f} |")


if __name__ == "__main__":
    main()
