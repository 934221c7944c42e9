"""Export a training checkpoint of the ``rnn`` codec into shipped weights + pin + model card.

Also measures what the integer decoder costs: PSNR of the float model (same checkpoint,
sign binarizer, no apply flags) against the shipped codec, per iteration, on held-out crops.

    python benchmarks/rnn_export.py --checkpoint /work/ckpt/rnn/best.pt \\
        --out recodec/codecs/rnn/weights --data ../shared/data/train
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import heldout_images, psnr  # noqa: E402


def float_vs_codec(checkpoint: str, weights: str, crops: list[np.ndarray]) -> list[dict[str, float]]:
    """Per iteration: mean bpp (whole file) and PSNR of the codec, PSNR of the float model."""
    from recodec.codecs.rnn import bitstream
    from recodec.codecs.rnn.codec import RnnCodec
    from recodec.codecs.rnn.export import load_float_model

    model, _ = load_float_model(checkpoint)
    codec = RnnCodec(weights=weights)
    k_max = int(codec.runtime.arch.iterations)
    rows: list[dict[str, list[float]]] = [{"bpp": [], "psnr": [], "float_psnr": []} for _ in range(k_max)]
    for img in crops:
        full = codec.encode(img, iterations=k_max)
        x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
        with torch.no_grad():
            recs, _ = model(x)
        for k, out in enumerate(codec.decode_every_prefix(full)):
            f = (recs[k][0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            rows[k]["bpp"].append(len(bitstream.cut(full, k + 1)) * 8 / (img.shape[0] * img.shape[1]))
            rows[k]["psnr"].append(psnr(img, out))
            rows[k]["float_psnr"].append(psnr(img, f))
    return [{"quality": k + 1, **{key: float(np.mean(v)) for key, v in r.items()}} for k, r in enumerate(rows)]


def pixels_seen(history: str, steps: int, cfg: dict) -> int:
    """Training pixels when the crop changed: ``"364:128"`` = the first 364 steps used 128^2 crops."""
    total, done = 0, 0
    for part in filter(None, history.split(",")):
        n, crop = (int(v) for v in part.split(":"))
        total += (n - done) * cfg["batch_size"] * crop * crop
        done = n
    return total + (steps - done) * cfg["batch_size"] * cfg["crop"] ** 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="/work/ckpt/rnn/best.pt")
    ap.add_argument("--out", default="recodec/codecs/rnn/weights")
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train"))
    ap.add_argument("--calibration", type=int, default=32, help="training photos (CID22) the context model is fitted to")
    ap.add_argument("--crop-history", default="",
                    help="STEPS:CROP,... when the crop changed during the run (for the pixel count)")
    ap.add_argument("--stages", default="", help="training history for the card's notes (stages, losses)")
    ap.add_argument("--device-note", default="one thread, nice 19, on a 2-core box shared with 7 other jobs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from recodec.codecs.rnn.card import write_card
    from recodec.codecs.rnn.export import export_checkpoint
    from recodec.tasks.train import list_images, load_rgb

    urls = [u for u in list_images(args.data, split="train") if "cid22" in u][: args.calibration]
    exported = export_checkpoint(args.checkpoint, args.out, [load_rgb(u) for u in urls])
    held = heldout_images(4)
    crops = [img[:256, :256] for _, img in held]
    points = float_vs_codec(args.checkpoint, exported["path"], crops)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    cfg = json.loads(ckpt["config"])
    summary = {"steps": int(ckpt["step"]), "seconds": float(ckpt["seconds"]), "device": ckpt["device"],
               "device_note": args.device_note, "images": len(list_images(args.data, split="train")),
               "config": cfg, "pixels": pixels_seen(args.crop_history, int(ckpt["step"]), cfg)}
    gap = max(abs(p["psnr"] - p["float_psnr"]) for p in points)
    notes = ("Integer decoder vs float model on the same crops (PSNR dB per iteration, codec / float): "
             + ", ".join(f"{p['quality']}: {p['psnr']:.2f} / {p['float_psnr']:.2f}" for p in points)
             + f"; largest gap {gap:.2f} dB (the codec also skips blocks whose update would hurt). "
             f"Calibration (activation scales, context model): {len(urls)} training images."
             + (f" Training stages: {args.stages}" if args.stages else ""))
    card = write_card(str(Path(args.out) / "MODEL_CARD.md"), summary=summary, export=exported, rd_points=points,
                      eval_images=[f"{n} (top-left 256x256)" for n, _ in held], data=args.data, notes=notes)
    print(json.dumps({"export": exported, "card": card, "points": points, "step": summary["steps"],
                      "hours": summary["seconds"] / 3600}, indent=1))
    if not math.isfinite(gap):
        raise SystemExit("non-finite PSNR gap")


if __name__ == "__main__":
    main()
