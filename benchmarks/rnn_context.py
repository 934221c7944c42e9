"""Bits per code bit of the rnn codec's two context models, fitted on training photos, on held-out photos.

Codes every whole 256^2 tile of ``--calibration`` CID22 training photos and of the held-out
photos (devset photos first) with the shipped weights' integer decoder, fits the count table
of the first weights and the logistic model on the training codes, and prints the ideal code
length (-log2 P) of the held-out codes per iteration, in bits per code bit (1.0 = no saving).

    python benchmarks/rnn_context.py [--calibration 32] [--heldout 8] [--out docs/results/rnn_context.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import DATA, heldout_images  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "recodec" / "codecs" / "rnn" / "weights" / "rnn.pt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=str(WEIGHTS))
    ap.add_argument("--calibration", type=int, default=32)
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from recodec.codecs.rnn import context as C
    from recodec.codecs.rnn.export import calibration_codes, fit_logistic, fit_table
    from recodec.codecs.weights import load_pinned
    from recodec.tasks.train import list_images, load_rgb

    state, sha = load_pinned(Path(args.weights), "rnn", expected=None)
    urls = [u for u in list_images(str(DATA / "train"), split="train") if "cid22" in u][: args.calibration]
    train, _, _ = calibration_codes(state, [load_rgb(u) for u in urls])
    held, _, _ = calibration_codes(state, [img for _, img in heldout_images(args.heldout)])
    per_iter = held[0][0].size * len(held)
    models = {"table (first weights)": C.TableContext(fit_table(train)),
              "logistic (shipped)": C.LogisticContext(fit_logistic(train), C.logit_table())}
    rows = {name: (C.ideal_bits(m, held) / per_iter).round(4).tolist() for name, m in models.items()}
    print(f"weights {sha[:16]}, {len(train)} training tiles, {len(held)} held-out tiles (256^2)")
    print("| model | mean | " + " | ".join(f"k={k + 1}" for k in range(len(held[0]))) + " |")
    print("|---|---|" + "---|" * len(held[0]))
    for name, bits in rows.items():
        print(f"| {name} | {np.mean(bits):.3f} | " + " | ".join(f"{b:.3f}" for b in bits) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps({"weights": sha, "train_tiles": len(train), "heldout_tiles": len(held),
                                              "bits_per_code_bit": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
