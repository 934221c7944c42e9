"""Rate-distortion of the ``rnn`` codec against JPEG 4:2:0 and the hyperprior, PSNR and MS-SSIM.

Held-out photos (never trained on): the devset photos and the held-out split of the
training folders.  bpp counts every byte of each file; PSNR and MS-SSIM
(:func:`recodec.metrics.compute_metrics`) are computed on what the decoder returns.

The rnn curve is ONE progressive stream per image (K iterations) read at every prefix
(:meth:`RnnCodec.decode_every_prefix`, bpp of :func:`bitstream.cut`); the benchmark also
encodes every k separately on the first image and checks that it gives the same bytes,
so the "separately encoded" curve is the same curve.  BD-rates use the log-rate gap over
the quality interval that JPEG spans between 0.1 and 0.6 bpp (PCHIP, ``recodec.rd``).

    python benchmarks/rnn_rd.py --codecs jpeg-420,hyperprior,rnn --out docs/results/rnn_rd.json \\
        --plot docs/img/rnn_rd.png
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import heldout_images, psnr  # noqa: E402

JPEG_QUALITIES = [2, 4, 6, 8, 10, 15, 20, 30, 40, 50, 60, 75]
#: The whole 9-point ladder (4-9 are the session-9 qualities 1-6, decoded identically).
HYPERPRIOR_QUALITIES = [1, 2, 3, 4, 5, 6, 7, 8, 9]
BPP_RANGE = (0.1, 0.6)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM as recorded in the manifest."""
    from recodec.metrics import compute_metrics

    return float(compute_metrics(a, b).ms_ssim)


def point(img: np.ndarray, data: bytes, out: np.ndarray) -> dict[str, float]:
    """bpp (whole file), PSNR and MS-SSIM of one decoded image."""
    return {"bpp": len(data) * 8 / (img.shape[0] * img.shape[1]), "psnr": psnr(img, out), "ms_ssim": ms_ssim(img, out)}


def jpeg_points(img: np.ndarray) -> list[dict[str, float]]:
    """libjpeg-turbo (Pillow) 4:2:0, optimised Huffman tables."""
    from PIL import Image

    pts = []
    for q in JPEG_QUALITIES:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=q, subsampling="4:2:0", optimize=True)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            pts.append({"setting": q, **point(img, buf.getvalue(), np.asarray(im.convert("RGB")))})
    return pts


def hyperprior_points(img: np.ndarray) -> list[dict[str, float]]:
    """The shipped hyperprior at every quality."""
    from recodec.codecs.registry import get_codec

    codec = get_codec("hyperprior")
    pts = []
    for q in HYPERPRIOR_QUALITIES:
        data = codec.encode(img, quality=q)
        pts.append({"setting": q, **point(img, data, codec.decode(data))})
    return pts


def rnn_codec(weights: str | None = None) -> Any:
    """The shipped ``rnn`` codec, or one with candidate ``weights`` (a pinned file, e.g. an export)."""
    from recodec.codecs.registry import get_codec
    from recodec.codecs.rnn.codec import RnnCodec

    return RnnCodec(weights=weights) if weights else get_codec("rnn")


def rnn_points(img: np.ndarray, weights: str | None = None) -> list[dict[str, float]]:
    """One K-iteration stream read at every prefix."""
    from recodec.codecs.rnn import bitstream

    codec = rnn_codec(weights)
    full = codec.encode(img, iterations=int(codec.knob.high))
    return [{"setting": k, **point(img, bitstream.cut(full, k), out)}
            for k, out in enumerate(codec.decode_every_prefix(full), 1)]


def separate_equals_cut(img: np.ndarray, weights: str | None = None) -> bool:
    """True when every separately encoded k-iteration stream equals the cut of the K stream."""
    from recodec.codecs.rnn import bitstream

    codec = rnn_codec(weights)
    full = codec.encode(img, iterations=int(codec.knob.high))
    return all(codec.encode(img, iterations=k) == bitstream.cut(full, k) for k in range(1, int(codec.knob.high) + 1))


def average(per_image: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-setting means over images (equal weight per image)."""
    return [{key: float(np.mean([pts[i][key] for pts in per_image])) for key in per_image[0][i]}
            for i in range(len(per_image[0]))]


def bd_rate_in_range(anchor: list[dict[str, float]], test: list[dict[str, float]], metric: str) -> dict[str, Any]:
    """BD-rate (%) over the quality interval the anchor spans in BPP_RANGE (and both curves reach)."""
    from recodec.rd import pchip_integral

    def curve(pts: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted(pts, key=lambda p: p[metric])
        q = np.array([p[metric] for p in pts])
        keep = np.concatenate([[True], np.diff(q) > 0])
        return q[keep], np.log(np.array([p["bpp"] for p in pts]))[keep]

    qa, ra = curve(anchor)
    qt, rt = curve(test)
    lo_a = float(np.interp(math.log(BPP_RANGE[0]), ra, qa))
    hi_a = float(np.interp(math.log(BPP_RANGE[1]), ra, qa))
    lo, hi = max(lo_a, qa[0], qt[0]), min(hi_a, qa[-1], qt[-1])
    if hi <= lo:
        return {"bd_rate": float("nan"), "interval": [lo, hi], "reason": "no overlapping quality"}
    gap = (pchip_integral(qt, rt, lo, hi) - pchip_integral(qa, ra, lo, hi)) / (hi - lo)
    return {"bd_rate": (math.exp(gap) - 1) * 100, "interval": [lo, hi], "anchor_interval": [lo_a, hi_a],
            "covers": (hi - lo) / (hi_a - lo_a)}


def plot(curves: dict[str, list[dict[str, float]]], path: str) -> None:
    """PSNR and MS-SSIM against bpp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric in zip(axes, ("psnr", "ms_ssim")):
        for name, pts in curves.items():
            style = {"rnn": "o-", "rnn-separate": "x", "jpeg-420": "s-", "hyperprior": "^-"}.get(name, ".-")
            label = {"rnn": "rnn (one stream, every prefix)",
                     "rnn-separate": "rnn (each k encoded separately)"}.get(name, name)
            ax.plot([p["bpp"] for p in pts], [p[metric] for p in pts], style, label=label, ms=5)
        ax.axvspan(*BPP_RANGE, color="grey", alpha=0.08)
        ax.set_xlabel("bpp (whole file)")
        ax.set_ylabel({"psnr": "PSNR dB (RGB)", "ms_ssim": "MS-SSIM"}[metric])
        ax.set_xlim(0, 1.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Held-out photos: rnn (progressive) vs JPEG 4:2:0 vs hyperprior")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(report: dict[str, Any]) -> str:
    """RD points and BD-rates as Markdown (for docs/rnn.md)."""
    lines = ["| codec | setting | bpp | PSNR dB | MS-SSIM |", "|---|---|---|---|---|"]
    for name, pts in report["curves"].items():
        if name != "rnn-separate":
            lines += [f"| {name} | {p['setting']:g} | {p['bpp']:.3f} | {p['psnr']:.2f} | {p['ms_ssim']:.4f} |"
                      for p in pts]
    lines += ["", "| codec | BD-rate vs JPEG 4:2:0, PSNR | BD-rate vs JPEG 4:2:0, MS-SSIM |", "|---|---|---|"]
    for name, bd in report.get("bd_rate_vs_jpeg", {}).items():
        cells = [f"{bd[m]['bd_rate']:+.1f} % (quality {bd[m]['interval'][0]:.4g}-{bd[m]['interval'][1]:.4g})"
                 if math.isfinite(bd[m]["bd_rate"]) else f"undefined ({bd[m].get('reason', '')})"
                 for m in ("psnr", "ms_ssim")]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--codecs", default="jpeg-420,hyperprior,rnn")
    ap.add_argument("--limit", type=int, default=8, help="held-out images (devset photos first)")
    ap.add_argument("--out", default="docs/results/rnn_rd.json")
    ap.add_argument("--plot", default="docs/img/rnn_rd.png")
    ap.add_argument("--report-only", action="store_true", help="print the Markdown of an existing --out")
    ap.add_argument("--rnn-weights", help="candidate rnn weights file (default: the shipped ones)")
    args = ap.parse_args()
    if args.report_only:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    import torch

    torch.set_num_threads(1)
    images = heldout_images(args.limit)
    out_path = Path(args.out)
    report: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {"curves": {}}
    report["images"] = [n for n, _ in images]
    fns = {"jpeg-420": jpeg_points, "hyperprior": hyperprior_points,
           "rnn": lambda img: rnn_points(img, args.rnn_weights)}
    for name in args.codecs.split(","):
        t0 = time.process_time()
        report["curves"][name] = average([fns[name](img) for _, img in images])
        report.setdefault("cpu_seconds", {})[name] = round(time.process_time() - t0, 1)
        print(name, report["cpu_seconds"][name], flush=True)
        if name == "rnn":
            report["separate_equals_cut"] = separate_equals_cut(images[0][1][:256, :256], args.rnn_weights)
    curves = report["curves"]
    if "rnn" in curves and report.get("separate_equals_cut"):
        curves["rnn-separate"] = curves["rnn"]  # byte-identical streams, hence identical points
    report["bd_rate_vs_jpeg"] = {
        name: {m: bd_rate_in_range(curves["jpeg-420"], pts, m) for m in ("psnr", "ms_ssim")}
        for name, pts in curves.items() if name not in ("jpeg-420", "rnn-separate") and "jpeg-420" in curves}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(report, indent=1))
    plot(curves, args.plot)
    print(markdown(report))


if __name__ == "__main__":
    main()
