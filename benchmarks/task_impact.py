"""The survey's CNN study on our data: how codecs change a segmentation model's answer, per byte.

    python benchmarks/task_impact.py [--model recodec/task/models/landcover4.pt] [--crop 256]
        [--json docs/results/task_impact.json] [--plot docs/img/task_impact.png] > table.md

Images: held-out NAIP scenes (R, G, B, NIR, uint8; years the example model never saw: 2018 and
2019 from satellite-train, 2020 from devset), each cut into four ``--crop`` squares.  Codecs:
JPEG, JPEG 2000, JPEG XL, WebP and the learned factorized / hyperprior codecs, each swept over
its knob.  Every point is encoded, decoded, measured (bpp of every byte, PSNR over the 8-bit
range) and the task model is run on the decoded pixels and compared with its answer on the
original (``task_agreement``, ``task_miou``).  The learned codecs hold 1-3 bands: they code
R, G, B as one stream and NIR as a second, and both streams' bytes are counted.

Reported, per codec, for ``task_agreement >= 0.99`` and for ``psnr >= 40``:

- *fixed*: bytes of the one knob value that meets the bound on every image (the cheapest such);
- *per image*: bytes when each image gets the cheapest grid point that meets the bound on it
  (what the per-image target search approaches);
- and across codecs (``auto``): the cheapest codec and knob per image against the cheapest single
  (codec, knob) meeting the bound everywhere;
- *searched* (``--search``): bytes the pipeline's own per-image target search
  (:func:`recodec.target.search_codecs`, the task model run on every attempt) spends, per codec
  and across the classical codecs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from recodec.codecs import get_codec  # noqa: E402
from recodec.container import decode_output, encode_output  # noqa: E402
from recodec.formats.image import Image  # noqa: E402
from recodec.formats.source import read_image  # noqa: E402
from recodec.metrics import compute_metrics  # noqa: E402
from recodec.task.model import TaskModel, read_model  # noqa: E402

DATA = REPO.parent / "shared" / "data"
SCENES = [DATA / "satellite-train" / "naip_m_4709963_se_14_1_20180716.tif",
          DATA / "satellite-train" / "naip_m_4709963_se_14_1_20190904.tif",
          DATA / "devset" / "naip_m_4709963_se_14_1_20200831.tif"]
GRIDS: dict[str, list[float]] = {
    "jpeg": [float(q) for q in range(5, 101, 5)],
    "webp": [float(q) for q in range(5, 101, 5)],
    "jxl": np.geomspace(0.02, 12.0, 18).round(3).tolist(),
    "jpeg2000": [float(p) for p in np.arange(22.0, 62.1, 2.5)],
    "factorized": [1, 2, 3, 4, 5, 6],
    "hyperprior": [1, 2, 3, 4, 5, 6],
}
LEARNED = {"factorized", "hyperprior"}
BOUNDS = {"task_agreement>=0.99": ("task_agreement", 0.99), "psnr>=40": ("psnr", 40.0)}


def crops(side: int) -> list[tuple[str, np.ndarray]]:
    """Four ``side``-pixel squares of each held-out scene (its quadrants' centres)."""
    out = []
    for path in SCENES:
        arr = read_image(path.read_bytes()).array
        h, w = arr.shape[:2]
        for i, (cy, cx) in enumerate([(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4),
                                      (3 * h // 4, 3 * w // 4)]):
            top, left = max(0, cy - side // 2), max(0, cx - side // 2)
            out.append((f"{path.stem[-8:]}-q{i}", np.ascontiguousarray(arr[top:top + side, left:left + side])))
    return out


def code(codec: str, arr: np.ndarray, value: float) -> tuple[int, np.ndarray]:
    """(bytes, decoded) of ``arr`` at knob ``value``; learned codecs code RGB and NIR separately."""
    c = get_codec(codec)
    params = {c.knob.name: int(value) if c.knob.integer else value}
    if codec in LEARNED:
        parts = [arr[:, :, :3], arr[:, :, 3:]]
        streams = [c.encode(np.ascontiguousarray(p), **params) for p in parts]
        decoded = np.concatenate([decode_output(s, codec=c) for s in streams], axis=2)
        return sum(len(s) for s in streams), decoded
    data = encode_output(Image(arr, "TIFF"), c, params, container="raw")
    return len(data), decode_output(data, codec=c)


def measure(model: TaskModel, images: list[tuple[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Every (image, codec, knob) point."""
    points = []
    for name, arr in images:
        judge = model.judge(arr)
        for codec, grid in GRIDS.items():
            t0 = time.perf_counter()
            for value in grid:
                size, dec = code(codec, arr, value)
                m = compute_metrics(arr, dec, structural=False, device="cpu")
                points.append({"image": name, "codec": codec, "knob": value, "bytes": size,
                               "bpp": 8 * size / (arr.shape[0] * arr.shape[1]), "psnr": m.psnr,
                               **{k: v for k, v in judge(dec).items() if k in ("task_agreement", "task_miou")}})
            print(f"{name} {codec}: {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    return points


SEARCHED = ("jpeg", "webp", "jxl", "jpeg2000")


def searched_bytes(model: TaskModel, images: list[tuple[str, np.ndarray]], target_text: str) -> dict[str, Any]:
    """Total bytes the per-image target search spends, per codec and across them (None: unmet somewhere)."""
    from recodec.pipeline import with_task
    from recodec.target import codec_candidate, parse_target, search_codecs

    target, totals = parse_target(target_text), {name: 0 for name in (*SEARCHED, "auto")}
    for name, arr in images:
        judge, candidates = model.judge(arr), []
        for codec in SEARCHED:
            c = get_codec(codec)
            cand = codec_candidate(c, arr, params=c.resolve_params({}), structural=False, device="cpu",
                                   encoder=lambda a, p, c=c: encode_output(Image(a, "TIFF"), c, p, container="raw"),
                                   decoder=lambda data, c=c: decode_output(data, codec=c))
            cand.measure = with_task(cand.measure, judge)
            candidates.append(cand)
        result = search_codecs(candidates, target)
        for codec in SEARCHED:
            r = result.results.get(codec)
            met = r is not None and r.met and r.data is not None
            totals[codec] = totals[codec] + len(r.data) if met and totals[codec] is not None else None  # type: ignore
        best = result.best
        totals["auto"] = totals["auto"] + len(best.data) if best and best.data and totals["auto"] is not None else None
        print(f"{name} searched {target_text}: {result.codec}", file=sys.stderr, flush=True)
    return totals


def savings(points: list[dict[str, Any]], metric: str, bound: float) -> dict[str, dict[str, Any]]:
    """Per codec and for ``auto``: bytes of the cheapest fixed setting vs the per-image choice."""
    images = sorted({p["image"] for p in points})
    by_setting: dict[tuple[str, float], dict[str, int]] = {}
    for p in points:
        if p[metric] >= bound:
            by_setting.setdefault((p["codec"], p["knob"]), {})[p["image"]] = p["bytes"]
    out: dict[str, dict[str, Any]] = {}
    for codec in [*GRIDS, "auto"]:
        mine = {k: v for k, v in by_setting.items() if codec == "auto" or k[0] == codec}
        fixed = [(sum(v.values()), k) for k, v in mine.items() if len(v) == len(images)]
        per_image = [min((v[i] for v in mine.values() if i in v), default=None) for i in images]
        row: dict[str, Any] = {"fixed_bytes": None, "fixed_setting": None, "per_image_bytes": None,
                               "images_met": sum(x is not None for x in per_image)}
        if fixed:
            row["fixed_bytes"], row["fixed_setting"] = min(fixed)
        if all(x is not None for x in per_image):
            row["per_image_bytes"] = sum(per_image)  # type: ignore[arg-type]
        out[codec] = row
    return out


def compact_json(points: list[dict[str, Any]], result: dict[str, Any], searched: Any = None) -> str:
    """The points (floats to 5 significant digits, one per line), the savings and any search totals."""
    lines = [json.dumps({k: float(f"{v:.5g}") if isinstance(v, float) else v for k, v in p.items()})
             for p in points]
    head = '{"savings": ' + json.dumps(result) + (',\n"searched": ' + json.dumps(searched) if searched else "")
    return head + ',\n"points": [\n' + ",\n".join(lines) + "\n]}\n"


def plot(points: list[dict[str, Any]], path: Path) -> None:
    """Task agreement vs bpp beside PSNR vs bpp (means over images per knob value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for codec in GRIDS:
        curve = []
        for value in GRIDS[codec]:
            pts = [p for p in points if p["codec"] == codec and p["knob"] == value]
            curve.append((np.mean([p["bpp"] for p in pts]), np.mean([p["task_agreement"] for p in pts]),
                          np.mean([min(p["psnr"], 60.0) for p in pts])))
        curve.sort()
        axes[0].plot([c[0] for c in curve], [c[1] for c in curve], "o-", ms=3, label=codec)
        axes[1].plot([c[0] for c in curve], [c[2] for c in curve], "o-", ms=3, label=codec)
    axes[0].axhline(0.99, color="grey", ls="--", lw=0.8)
    axes[1].axhline(40, color="grey", ls="--", lw=0.8)
    axes[0].set(xlabel="bpp (4 bands, every byte)", ylabel="task agreement (pixels)", xscale="log",
                title="landcover4 segmentation: agreement with its answer on the original", ylim=(0.8, 1.001))
    axes[1].set(xlabel="bpp (4 bands, every byte)", ylabel="PSNR dB (capped at 60)", xscale="log", title="PSNR")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def table(result: dict[str, dict[str, dict[str, Any]]], n_images: int) -> str:
    """Markdown: bytes per codec at each bound, fixed vs per image."""
    lines = []
    for bound, rows in result.items():
        lines += [f"\n**{bound}** ({n_images} images)\n",
                  "| codec | cheapest fixed setting | fixed bytes | per-image bytes | per-image saves |",
                  "|---|---|---|---|---|"]
        for codec, r in rows.items():
            fixed, per = r["fixed_bytes"], r["per_image_bytes"]
            setting = f"{r['fixed_setting'][0]} {r['fixed_setting'][1]:g}" if r["fixed_setting"] else \
                f"none (met on {r['images_met']}/{n_images})"
            save = f"{100 * (1 - per / fixed):.1f}%" if fixed and per else "-"
            lines.append(f"| {codec} | {setting} | {fixed or '-'} | {per or '-'} | {save} |")
    return "\n".join(lines)


def main() -> None:
    """Run the sweep, write JSON and the plot, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "recodec" / "task" / "models" / "landcover4.pt"))
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--json", default=str(REPO / "docs" / "results" / "task_impact.json"))
    ap.add_argument("--plot", default=str(REPO / "docs" / "img" / "task_impact.png"))
    ap.add_argument("--search", action="store_true",
                    help="Only run the per-image target search on the images and add it to --json.")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    model = TaskModel.from_ref(read_model(args.model))
    images = crops(args.crop)
    if args.search:
        saved = json.loads(Path(args.json).read_text())
        saved["searched"] = {t: searched_bytes(model, images, t) for t in BOUNDS}
        Path(args.json).write_text(compact_json(saved["points"], saved["savings"], saved["searched"]))
        print(json.dumps(saved["searched"], indent=1))
        return
    points = measure(model, images)
    result = {name: savings(points, metric, bound) for name, (metric, bound) in BOUNDS.items()}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(compact_json(points, result))
    plot(points, Path(args.plot))
    print(table(result, len(images)))


if __name__ == "__main__":
    main()
