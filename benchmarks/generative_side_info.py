"""How well can a decoder predict the original's fine-band energy, and do the hyperprior's scales help?

The question behind "condition the GAN on the hyperprior's decoded scales" (docs/generative.md):
per 64^2 patch of a training run's cached crops (``OUT/pairs-hyperprior.npz``) at quality 1,
a least-squares fit of the original's log fine-band energy from what a decoder can know:

* the MSE decode's log band energies (fine, mid, coarse);
* plus the hyperprior's mean scale index over the patch's latents (sigma, from z alone);
* plus the mean log |residual| and the share of non-zero residuals (the coded latents,
  ``HyperpriorCodec.tile_symbols``).

Fitted on four fifths of the crops, scored on the rest (R^2 and RMS error in natural-log
units; 1.0 is a factor e).  Then the first fit, on all crops, predicts (median) the fine-band
energy of each image of generative_eval.py's photo and satellite sets at quality 1 from its MSE
decode: the per-image ratio predicted / actual shows how far any decoder that guesses texture
from the stream can land from 1 on a small set.

    python benchmarks/generative_side_info.py OUT/pairs-hyperprior.npz [--crops 400]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

PATCH = 64
FEATURES = {"MSE decode's band energies": [4, 5, 6], "+ scale index (sigma)": [4, 5, 6, 7],
            "+ coded residuals": [4, 5, 6, 7, 8, 9], "scale index alone": [7]}


def band_maps(img: np.ndarray) -> list[np.ndarray]:
    """Per-pixel squared band-pass of luma, fine / mid / coarse (:func:`recodec.hfenergy.band_pass`)."""
    import torch

    from recodec.hfenergy import band_pass

    x = torch.from_numpy(img.astype(np.float64) / 255).permute(2, 0, 1)[None]
    return [(b[0, 0] ** 2).numpy() for b in band_pass(x)]


def latents(codec: Any, img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scale index, residual) maps (M, h/16, w/16) that the stream of one crop codes at quality 1."""
    import torch

    with torch.no_grad():
        _, index, residual = codec.tile_symbols(codec.runtime, img, 0)
    return index.astype(np.float64), residual


def patch_rows(i: int, original: np.ndarray, decoded: np.ndarray, index: np.ndarray, residual: np.ndarray) -> list[list[float]]:
    """[crop, log E_orig x3, log E_mse x3, mean index, log mean |residual|, non-zero share] per patch."""
    eo, em = band_maps(original), band_maps(decoded)
    rows = []
    for top in range(0, original.shape[0] - PATCH + 1, PATCH):
        for left in range(0, original.shape[1] - PATCH + 1, PATCH):
            px = (slice(top, top + PATCH), slice(left, left + PATCH))
            lat = (slice(None), slice(top // 16, (top + PATCH) // 16), slice(left // 16, (left + PATCH) // 16))
            rows.append([i, *(np.log(e[px].mean() + 1e-9) for e in eo), *(np.log(e[px].mean() + 1e-9) for e in em),
                         index[lat].mean(), np.log(np.abs(residual[lat]).mean() + 1e-3), (residual[lat] != 0).mean()])
    return rows


def score(rows: np.ndarray, cols: list[int]) -> tuple[float, float]:
    """(R^2, RMS error) of the held-back fifth of the crops."""
    x = np.column_stack([np.ones(len(rows))] + [rows[:, c] for c in cols])
    test = rows[:, 0].astype(int) % 5 == 0
    w, *_ = np.linalg.lstsq(x[~test], rows[~test, 1], rcond=None)
    err = rows[test, 1] - x[test] @ w
    return float(1 - err.var() / rows[test, 1].var()), float(np.sqrt((err**2).mean()))


def eval_ratios(table: np.ndarray, codec: Any) -> dict[str, list[float]]:
    """Per-image predicted / actual fine-band energy on the evaluation sets (quality 1, first fit)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generative_eval import load_sets

    x = np.column_stack([np.ones(len(table)), table[:, 4:7]])
    w, *_ = np.linalg.lstsq(x, table[:, 1], rcond=None)
    out: dict[str, list[float]] = {}
    for name, images in load_sets(256, 12, 2).items():
        for _, img in images:
            rows = np.array(patch_rows(0, img, codec.decode(codec.encode(img, quality=1)), *latents(codec, img)))
            predicted = np.exp(np.column_stack([np.ones(len(rows)), rows[:, 4:7]]) @ w).sum()
            out.setdefault(name, []).append(float(predicted / np.exp(rows[:, 1]).sum()))
    return out


def main() -> None:
    """Print the table."""
    import torch

    from recodec.codecs.learned.codec import HyperpriorCodec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", help="a training run's pairs-hyperprior.npz")
    p.add_argument("--crops", type=int, default=400)
    args = p.parse_args()
    torch.set_num_threads(1)
    pairs = np.load(args.pairs)
    bank, decoded = pairs["bank"], pairs["recon"][list(pairs["qualities"]).index(1)]
    codec = HyperpriorCodec()
    codec.load()
    rows: list[list[float]] = []
    for i in np.linspace(0, len(bank) - 1, min(args.crops, len(bank))).astype(int):
        rows += patch_rows(int(i), bank[i], decoded[i], *latents(codec, bank[i]))
    table = np.array(rows)
    print(f"{len(table)} patches of {PATCH}^2 from {min(args.crops, len(bank))} crops, quality 1")
    print("| predictors of log fine-band energy | R^2 | RMS error (ln) |\n|---|---|---|")
    for name, cols in FEATURES.items():
        r2, rms = score(table, cols)
        print(f"| {name} | {r2:.3f} | {rms:.3f} |")
    for name, ratios in eval_ratios(table, codec).items():
        print(f"{name}: predicted / actual fine-band energy per image {np.round(ratios, 2).tolist()}, "
              f"mean {np.mean(ratios):.2f}, median {np.median(ratios):.2f}")


if __name__ == "__main__":
    main()
