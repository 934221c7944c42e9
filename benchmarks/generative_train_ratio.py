"""Fine / mid / coarse band-energy ratio of the GAN decoder at full realism on *training* crops.

The checks of docs/generative.md's session-11 stage table: random crops (64, 128 and 256 px) of a
training run's cached pairs (``OUT/pairs-hyperprior.npz``) at one quality, the generator at
realism 1; per crop size the mean and the geometric mean of the per-crop ratio.  Training data
only, so it can steer a run without touching the held-out evaluation.

    python benchmarks/generative_train_ratio.py OUT/pairs-hyperprior.npz [--checkpoint OUT/checkpoint.pt --part ema]
        [--subset scenes]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def subset(arrays: dict[str, np.ndarray], which: str) -> dict[str, np.ndarray]:
    """The pairs restricted to the photo or the scene crops (``scene`` flag of ``--scenes`` runs)."""
    if which == "all" or "scene" not in arrays:
        return arrays
    keep = arrays["scene"] if which == "scenes" else ~arrays["scene"]
    rest = {k: v for k, v in arrays.items() if k not in ("bank", "recon", "scene")}
    return {**rest, "bank": arrays["bank"][keep], "recon": arrays["recon"][:, keep]}


def main() -> None:
    """Print one line per crop size."""
    import torch

    from recodec.codecs.generative import training as T
    from recodec.codecs.generative.decoding import WEIGHTS_DIR
    from recodec.hfenergy import band_energies

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", help="a training run's pairs-hyperprior.npz")
    p.add_argument("--checkpoint", default=str(WEIGHTS_DIR / "gan-hyperprior.pt"),
                   help="a training checkpoint or a shipped weights file (default: the shipped one)")
    p.add_argument("--part", default="ema", help="checkpoint entry: ema (the exported average) or net")
    p.add_argument("--quality-index", type=int, default=0, help="index into the pairs' qualities (0: the lowest)")
    p.add_argument("--crops", type=int, default=32)
    p.add_argument("--subset", choices=("all", "photos", "scenes"), default="all",
                   help="bank crops to draw from: all (scene crops at the training share), photos or scenes only")
    args = p.parse_args()
    torch.set_num_threads(1)
    net = T.generator_from_file(Path(args.checkpoint), args.part)
    arrays = subset(dict(np.load(args.pairs)), args.subset)
    only = tuple(float(i == args.quality_index) for i in range(len(arrays["recon"])))
    rng = np.random.default_rng(3)
    for crop in (64, 128, 256):
        x, y, levels = T.sample_batch(arrays, "hyperprior", args.crops, crop, rng, pair_weights=only)
        x, y = T.to_batch(x, "cpu"), T.to_batch(y, "cpu")
        with torch.no_grad():
            fake = net(y, torch.randn(len(x), 2, crop, crop), torch.ones(len(x)), torch.from_numpy(levels))
        ratio = band_energies(fake) / band_energies(x)
        mean, geo = ratio.mean(0), torch.exp(torch.log(ratio).mean(0))
        print(f"{crop}^2: mean {[round(float(v), 2) for v in mean]}  geometric mean {[round(float(v), 2) for v in geo]}",
              flush=True)


if __name__ == "__main__":
    main()
