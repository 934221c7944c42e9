"""What encoder-side latent refinement buys per iteration count: bpp, PSNR, RD loss and encode time.

    python benchmarks/learned_refine.py --out docs/results/learned_refine.json

Per held-out image (256^2 crops of the first ``--limit`` images of ``learned_rd.py``'s set),
per quality and per ``refine`` iteration count, the shipped hyperprior (or ``--codec
factorized``) encodes, decodes, and the file's bpp, the decoded PSNR and the codec's own
objective ``lambda * 255^2 * MSE + bpp`` are recorded, with the encode's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(codec: object, img: np.ndarray, quality: int, refine: int) -> dict[str, float]:
    """One encode + decode: bpp, PSNR, RD loss and encode seconds."""
    from learned_rd import psnr

    from recodec.codecs.learned.lambdas import DEFAULT_LAMBDAS

    t0 = time.perf_counter()
    data = codec.encode(img, quality=quality, refine=refine)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - t0
    out = codec.decode(data)  # type: ignore[attr-defined]
    bpp = 8 * len(data) / (img.shape[0] * img.shape[1])
    mse = float(np.mean((img.astype(np.float64) - out) ** 2)) / 255**2
    return {"bpp": bpp, "psnr": psnr(img, out), "loss": DEFAULT_LAMBDAS[quality - 1] * 255**2 * mse + bpp,
            "encode_s": seconds}


def main() -> None:
    """Command-line entry point."""
    from learned_rd import heldout_images

    from recodec.codecs.registry import get_codec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="hyperprior", choices=("hyperprior", "factorized"))
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--qualities", default="1,3,5,7,9")
    ap.add_argument("--iterations", default="0,25,50,100,200,400")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    codec = get_codec(args.codec)
    images = [(n, img[: args.crop, : args.crop]) for n, img in heldout_images(args.limit)]
    rows = []
    for q in (int(v) for v in args.qualities.split(",")):
        for it in (int(v) for v in args.iterations.split(",")):
            pts = [measure(codec, img, q, it) for _, img in images]
            row = {"quality": q, "refine": it, **{k: float(np.mean([p[k] for p in pts])) for k in pts[0]}}
            rows.append(row)
            print("  ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
    result = {"codec": args.codec, "weights_sha256": codec.runtime.sha256.hex(),  # type: ignore[attr-defined]
              "images": [n for n, _ in images], "crop": args.crop, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
