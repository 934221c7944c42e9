"""Compare GAN generators (shipped file or training checkpoints) on every held-out crop at one rate.

The check behind docs/generative.md's training experiments: the evaluation sets of
``generative_eval.py`` (photos as 2 x 2 grids, satellite scenes) and the scene sets of
``generative_scene_check.py`` (NAIP held-out years, the cloudy Landsat 8 scene, the devset's
other Landsat 8 scene), hyperprior quality 1, realism 1.
Per generator: geometric mean of the fine-band ratio per set, the spread of its log over the
photo crops and over the pooled held-out satellite crops (``HELD_OUT_SATELLITE``), the largest
crop ratio, the PSNR given up against the MSE decode, and on the cloudy Landsat 8 crops the
sparsity of the fine band (squared mean absolute over energy: 2/pi for Gaussian detail, lower for
sparse specks) of the original and of the generated view.  Then, per
set, how much more fine-band energy the generator adds on the hyperprior's 16 px latent grid
lines than elsewhere (:func:`grid_excess`).

    python benchmarks/generative_candidates.py [CKPT ...]   # default: the shipped generator
    python benchmarks/generative_candidates.py CKPT ... --decodes q1.npz --json crops.json   # reuse decodes
    python benchmarks/generative_candidates.py --hint      # with the texture record, as the codec decodes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import geo_mean, load_sets, measure  # noqa: E402
from generative_scene_check import scene_sets  # noqa: E402


def sparsity(img: np.ndarray) -> float:
    """(mean |fine band-pass|)^2 / mean fine band-pass^2 of an (H, W, 3) uint8 image."""
    import torch

    from recodec.hfenergy import band_energies

    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).double()[None]
    return float(band_energies(t, power=1)[0, 0] ** 2 / band_energies(t)[0, 0])


#: Stride (px) of the hyperprior's latent grid, anchored at each crop's origin (each crop is coded alone).
LATENT_GRID = 16
#: Satellite sets no generator was trained on, pooled in one column (the cloudy Landsat 8 scene
#: is not among them: the session-14 experiment trained on it).
HELD_OUT_SATELLITE = ("satellite", "naip", "landsat8-rgb16")
def grid_excess(plain: np.ndarray, view: np.ndarray, stride: int = LATENT_GRID) -> float:
    """Mean fine band-pass energy that ``view`` adds to ``plain`` on the latent grid's lines (the
    first and last row and column of each ``stride`` block) over that elsewhere: near 1 when the
    generator ignores the grid, above 1 when it sharpens block edges."""
    import torch

    from recodec.hfenergy import band_pass

    diff = torch.from_numpy(view.astype(np.float64) - plain.astype(np.float64)).permute(2, 0, 1)[None]
    added = band_pass(diff)[0][0, 0].numpy() ** 2
    rows, cols = np.arange(added.shape[0]) % stride, np.arange(added.shape[1]) % stride
    line = (np.isin(rows, (0, stride - 1))[:, None]) | (np.isin(cols, (0, stride - 1))[None, :])
    return float(added[line].mean() / max(added[~line].mean(), 1e-12))


Decoded = dict[str, list[tuple[str, np.ndarray, np.ndarray, int]]]


def decoded_crops(quality: int, cache: Path | None = None) -> Decoded:
    """{set: [(name, 256^2 crop, its MSE decode, stream bytes)]}: the evaluation sets and the scene sets,
    coded once at ``quality`` for every generator.  ``cache`` (an .npz) keeps each decode under the
    digest of its crop, the quality and the hyperprior's pinned weights, so a changed set, rate or
    hyperprior is coded afresh."""
    from recodec.codecs.generative.codecs import HYPERPRIOR_SHA256, TrainedOnHyperprior
    from recodec.digest import pixel_sha256

    stored: dict[str, np.ndarray] = {}
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            stored = dict(z)
    prefix = f"{HYPERPRIOR_SHA256[:16]}-q{quality}-"
    hyper = TrainedOnHyperprior()
    out: Decoded = {}
    kept: dict[str, np.ndarray] = {}  # only this run's decodes are written back
    for set_name, items in {**load_sets(256, 12, 2, 2), **scene_sets()}.items():
        out[set_name] = []
        for name, img in items:
            key = prefix + pixel_sha256(img)[:16]
            if key not in stored:
                data = hyper.encode(img, quality=quality)
                stored.update({key: hyper.decode(data), key + "-bytes": np.array(len(data))})
            kept.update({k: stored[k] for k in (key, key + "-bytes")})
            out[set_name].append((name, img, stored[key], int(stored[key + "-bytes"])))
    if cache is not None:
        np.savez(cache, **kept)
    return out


def judge(net: Any, sets: Decoded, quality: int, hint: bool = False) -> dict[str, Any]:
    """Per set: fine ratio per crop and PSNR gaps; on Landsat 8 the sparsity of the originals and the views.

    ``hint``: scale each view's texture to the original's energy, as the codec does with the
    texture record of its streams (:mod:`recodec.codecs.generative.texture`).
    """
    from recodec.codecs.generative import texture
    from recodec.codecs.generative.decoding import generate, to_tensor, to_uint8

    out: dict[str, Any] = {}
    for set_name, items in sets.items():
        fine, gap, spars, grid = {}, [], [], []
        for name, img, plain, nbytes in items:
            x = to_tensor(plain)
            view_t = generate(net, x, realism=1.0, seed=0, quality=quality)
            if hint:
                view_t = texture.calibrate(x, view_t, texture.decode_hint(texture.encode_hint(img), *img.shape[:2]),
                                           realism=1.0)
            view = to_uint8(view_t)
            m, g = measure(img, plain, nbytes), measure(img, view, nbytes)
            fine[name] = g["hf_fine"]
            gap.append(g["psnr"] - m["psnr"])
            grid.append(grid_excess(plain, view))
            if set_name == "landsat8":
                spars.append((sparsity(img), sparsity(view)))
        out[set_name] = {"fine": list(fine.values()), "crops": fine, "gap": float(np.mean(gap)), "sparsity": spars,
                         "grid": geo_mean(grid)}
    return out


def row(name: str, r: dict[str, Any]) -> str:
    """One Markdown row of the comparison."""
    photo = np.log(np.asarray(r["photo"]["fine"]))
    l8, rgb16 = r["landsat8"], r["landsat8-rgb16"]["fine"]
    orig, view = zip(*l8["sparsity"])
    pool = [v for k in HELD_OUT_SATELLITE for v in r[k]["fine"]]
    return (f"| {name} | {geo_mean(r['photo']['fine']):.2f}; {photo.std():.2f} | {geo_mean(r['satellite']['fine']):.2f} | "
            f"{geo_mean(r['naip']['fine']):.2f} | {min(rgb16):.2f}-{max(rgb16):.2f} | "
            f"{geo_mean(pool):.2f}; {np.log(pool).std():.2f} | "
            f"{min(l8['fine']):.2f}-{max(l8['fine']):.2f} | "
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
    p.add_argument("--decodes", type=Path,
                   help="cache of the MSE decodes (.npz), reused while the hyperprior is the same")
    p.add_argument("--json", type=Path, help="also write every crop's fine-band ratio per generator and set here")
    p.add_argument("--hint", action="store_true", help="apply the texture record as the codec does (default: the network's own guess)")
    args = p.parse_args()
    torch.set_num_threads(1)
    sets = decoded_crops(args.quality, args.decodes)
    results = {}
    print("| generator | photo fine (geometric mean; sd of ln) | satellite fine | NAIP held-out years fine | "
          "Landsat 8 rgb16 fine | held-out satellite pool (geometric mean; sd of ln) | Landsat 8 cloudy fine | "
          "Landsat 8 cloudy sparsity | worst photo crop | PSNR gap photo / satellite |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        results[str(path)] = judge(generator_from_file(path, args.part), sets, args.quality, args.hint)
        print(row(str(path), results[str(path)]), flush=True)
    print("\nAdded fine-band energy on the latent grid's lines over elsewhere (geometric mean per set):")
    for path, r in results.items():
        print(f"{path}: " + ", ".join(f"{k} {v['grid']:.2f}" for k, v in r.items()))
    if args.json:
        args.json.write_text(json.dumps({g: {k: r[k]["crops"] for k in r} for g, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
