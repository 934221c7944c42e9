"""Compare GAN generators (shipped file or training checkpoints) on every held-out crop at one rate.

The check behind docs/generative.md's session-13 training experiments: the evaluation sets of
``generative_eval.py`` (photos as 2 x 2 grids, satellite scenes) and the scene sets of
``generative_scene_check.py`` (NAIP other years, Landsat 8), hyperprior quality 1, realism 1.
Per generator: geometric mean of the fine-band ratio per set, the spread of its log over the
photo crops, the largest crop ratio, the PSNR given up against the MSE decode, and on the
Landsat 8 crops the sparsity of the fine band (squared mean absolute over energy: 2/pi for
Gaussian detail, lower for sparse specks) of the original and of the generated view.

    python benchmarks/generative_candidates.py [CKPT ...]   # default: the shipped generator
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import geo_mean, load_sets, measure  # noqa: E402
from generative_scene_check import landsat8_crops, naip_crops  # noqa: E402


def sparsity(img: np.ndarray) -> float:
    """(mean |fine band-pass|)^2 / mean fine band-pass^2 of an (H, W, 3) uint8 image."""
    import torch

    from recodec.hfenergy import band_energies

    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).double()[None]
    return float(band_energies(t, power=1)[0, 0] ** 2 / band_energies(t)[0, 0])


def decoded_crops(quality: int) -> dict[str, list[tuple[np.ndarray, np.ndarray, int]]]:
    """{set: [(256^2 crop, its MSE decode, stream bytes)]}: the evaluation sets and the two scene sets,
    coded once at ``quality`` for every generator."""
    from recodec.codecs import get_codec

    hyper = get_codec("hyperprior")
    sets = {**load_sets(256, 12, 2, 2), "naip": list(naip_crops()), "landsat8": list(landsat8_crops())}
    out = {}
    for set_name, items in sets.items():
        out[set_name] = []
        for _, img in items:
            data = hyper.encode(img, quality=quality)
            out[set_name].append((img, hyper.decode(data), len(data)))
    return out


def judge(net: Any, sets: dict[str, list[tuple[np.ndarray, np.ndarray, int]]], quality: int) -> dict[str, Any]:
    """Per set: fine ratios and PSNR gaps; on Landsat 8 the sparsity of the originals and the views."""
    from recodec.codecs.generative.decoding import generate, to_tensor, to_uint8

    out: dict[str, Any] = {}
    for set_name, items in sets.items():
        fine, gap, spars = [], [], []
        for img, plain, nbytes in items:
            view = to_uint8(generate(net, to_tensor(plain), realism=1.0, seed=0, quality=quality))
            m, g = measure(img, plain, nbytes), measure(img, view, nbytes)
            fine.append(g["hf_fine"])
            gap.append(g["psnr"] - m["psnr"])
            if set_name == "landsat8":
                spars.append((sparsity(img), sparsity(view)))
        out[set_name] = {"fine": fine, "gap": float(np.mean(gap)), "sparsity": spars}
    return out


def row(name: str, r: dict[str, Any]) -> str:
    """One Markdown row of the comparison."""
    photo = np.log(np.asarray(r["photo"]["fine"]))
    scenes = r["naip"]["fine"] + r["landsat8"]["fine"]
    l8 = r["landsat8"]
    orig, view = zip(*l8["sparsity"])
    return (f"| {name} | {geo_mean(r['photo']['fine']):.2f}; {photo.std():.2f} | {geo_mean(r['satellite']['fine']):.2f} | "
            f"{geo_mean(scenes):.2f} | {min(l8['fine']):.2f}-{max(l8['fine']):.2f} | "
            f"{min(view):.2f}-{max(view):.2f} (original {min(orig):.2f}-{max(orig):.2f}) | "
            f"{max(r['photo']['fine']):.2f} | {r['photo']['gap']:+.2f} / {r['satellite']['gap']:+.2f} dB |")


def main() -> None:
    """Print the comparison table, one row per generator."""
    import torch

    from recodec.codecs.generative.decoding import WEIGHTS_DIR
    from recodec.codecs.generative.training import generator_from_file

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="*", type=Path, default=[WEIGHTS_DIR / "gan-hyperprior.pt"])
    p.add_argument("--part", default="ema", help="checkpoint entry: ema (the exported average) or net")
    p.add_argument("--quality", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    sets = decoded_crops(args.quality)
    print("| generator | photo fine (geometric mean; sd of ln) | satellite fine | NAIP + Landsat 8 fine | "
          "Landsat 8 fine | Landsat 8 sparsity | worst photo crop | PSNR gap photo / satellite |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        print(row(str(path), judge(generator_from_file(path, args.part), sets, args.quality)), flush=True)


if __name__ == "__main__":
    main()
