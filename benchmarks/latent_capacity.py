"""How much can M latent values per 16x16 block carry?  A transform-coding bound for the hyperprior's ceiling.

The hyperprior's latent has M channels at 1/16 resolution: M numbers for every 16 x 16 x 3 = 768
pixel values.  Fed its *unquantised* latent, the shipped model (M=96) reconstructs no better than
about 31.6 dB (``benchmarks/learned_ceiling.py``, column "continuous").  This script asks what a
classical transform gets from the same budget of numbers: each 16x16 block of each band goes through
an orthonormal 2-D DCT, and of the 768 coefficients of a block only K are kept:

* ``fixed``: the K coefficient positions with the largest mean energy over the image (a linear code);
* ``best``: the K largest coefficients of each block (adaptive; their positions would cost extra bits).

    python benchmarks/latent_capacity.py [--k 48 96 192 320] [IMAGE ...]

Default images: the devset photos.  Prints one Markdown row per image (PSNR dB, peak 255, on the
image cropped to a multiple of 16).  Run by hand; results go to docs/learned.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEVSET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset"
BLOCK = 16


def dct_matrix(n: int = BLOCK) -> np.ndarray:
    """Orthonormal DCT-II matrix (rows are basis functions)."""
    k = np.arange(n)
    m = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


def blocks_of(img: np.ndarray) -> np.ndarray:
    """(blocks, 768) DCT coefficients of every 16x16 block, all bands (image in [0, 1])."""
    h, w, c = (img.shape[0] // BLOCK) * BLOCK, (img.shape[1] // BLOCK) * BLOCK, img.shape[2]
    b = img[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).transpose(0, 2, 1, 3, 4).reshape(-1, BLOCK, BLOCK, c)
    d = dct_matrix()
    return np.einsum("ij,njkc,lk->nilc", d, b, d).reshape(len(b), -1)


def psnr_kept(coef: np.ndarray, keep: np.ndarray) -> float:
    """PSNR (dB, peak 1) of the blocks rebuilt from the kept coefficients (orthonormal: error = dropped energy)."""
    mse = float((coef[~keep] ** 2).sum() / coef.size)
    return 10 * np.log10(1 / max(mse, 1e-20))


def capacity(img: np.ndarray, ks: list[int]) -> dict[str, list[float]]:
    """{"fixed": [PSNR per K], "best": [PSNR per K]} of one uint8 image."""
    coef = blocks_of(img.astype(np.float64) / 255)
    order = np.argsort(-(coef ** 2).mean(axis=0))
    ranks = np.argsort(np.argsort(-np.abs(coef), axis=1), axis=1)
    out: dict[str, list[float]] = {"fixed": [], "best": []}
    for k in ks:
        fixed = np.zeros(coef.shape[1], bool)
        fixed[order[:k]] = True
        out["fixed"].append(psnr_kept(coef, np.broadcast_to(fixed, coef.shape)))
        out["best"].append(psnr_kept(coef, ranks < k))
    return out


def main() -> None:
    """Print the table."""
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*")
    ap.add_argument("--k", type=int, nargs="+", default=[48, 96, 192, 320])
    args = ap.parse_args()
    paths = [Path(p) for p in args.images] or sorted(DEVSET.glob("photo_*"))
    print("| image | " + " | ".join(f"K={k} fixed / best" for k in args.k) + " |")
    print("|---" * (len(args.k) + 1) + "|")
    for path in paths:
        with Image.open(path) as im:
            res = capacity(np.asarray(im.convert("RGB")), args.k)
        cells = [f"{f:.1f} / {b:.1f}" for f, b in zip(res["fixed"], res["best"])]
        print(f"| {path.name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
