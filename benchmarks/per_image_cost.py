"""Where one image's time goes: read, encode, decode, metrics, hash, write, per codec and size.

Runs the per-image pipeline (:func:`recodec.pipeline.Pipeline.process`, the same code a worker
runs) in this process, one torch thread, on centre crops of a real photo, and prints a Markdown
table of median milliseconds per stage: the wall times the manifest records (run it niced on
a quiet machine; the shares are what to read on a busy one).

    nice -n 19 python benchmarks/per_image_cost.py --sizes 256 512 1024 --codecs jpeg webp jxl avif

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO.parent / "shared" / "data" / "train" / "clic2025-validation"
STAGES = ("read", "encode", "decode", "metrics", "hash", "write")


def crops(size: int, n: int) -> tuple[list[bytes], float]:
    """``n`` PNG crops of up to ``size`` x ``size`` from the CLIC photos (or the bundled samples),
    and their mean megapixels (a crop is capped by its photo's shorter side)."""
    from PIL import Image

    files = sorted(PHOTO.glob("*.png")) or sorted((REPO / "samples" / "archive" / "photos").glob("*.png"))
    out, pixels = [], 0
    for i in range(n):
        with Image.open(files[i % len(files)]) as im:
            rgb = np.asarray(im.convert("RGB"))
        h, w = rgb.shape[:2]
        side = min(size, h, w)
        pixels += side * side
        y, x = (h - side) // 2, (w - side) // 2
        buf = io.BytesIO()
        Image.fromarray(rgb[y:y + side, x:x + side]).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out, pixels / n / 1e6


def measure(codec: str, sources: list[bytes], out_dir: Path) -> dict[str, float]:
    """Median milliseconds per stage for ``codec`` over ``sources``."""
    from recodec.config import RunConfig
    from recodec.job import prepare_job
    from recodec.pipeline import Pipeline
    from recodec.storage import atomic_write, url_to_fs

    import types

    import recodec.pipeline

    # CPU time of this thread instead of wall time (torch runs on this one thread).
    recodec.pipeline.time = types.SimpleNamespace(perf_counter=time.thread_time)  # type: ignore[assignment]
    pipe = Pipeline(prepare_job(RunConfig(src="s", dst=str(out_dir), codec=codec)))
    fs, root = url_to_fs(str(out_dir))
    per: dict[str, list[float]] = {k: [] for k in STAGES}
    pipe.process(sources[0])  # warm-up: imports, codec load, torch set-up
    for i, data in enumerate(sources):
        clock = time.thread_time
        res = pipe.process(data)
        t0 = clock()
        atomic_write(fs, f"{root}/{i}.out", res.encoded.payload, durable=False)
        per["write"].append(clock() - t0)
        enc = res.encoded
        for stage, value in (("read", res.read_seconds), ("encode", enc.encode_seconds),
                             ("decode", enc.decode_seconds), ("metrics", enc.metrics_seconds),
                             ("hash", res.hash_seconds)):
            per[stage].append(value)
    return {k: 1000 * statistics.median(v) for k, v in per.items()}


def main() -> None:
    """Print the per-stage table."""
    import torch

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--codecs", nargs="+", default=["jpeg", "webp", "jxl", "avif"])
    ap.add_argument("--images", type=int, default=5)
    args = ap.parse_args()
    print("| codec | image | " + " | ".join(f"{s} ms" for s in STAGES) + " | metrics share |")
    print("|---|---|" + "---|" * (len(STAGES) + 1))
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            sources, megapixels = crops(size, args.images)
            for codec in args.codecs:
                ms = measure(codec, sources, Path(tmp))
                share = ms["metrics"] / sum(ms.values())
                print(f"| {codec} | {megapixels:.2f} MP | " + " | ".join(f"{ms[s]:.1f}" for s in STAGES)
                      + f" | {share:.0%} |", flush=True)


if __name__ == "__main__":
    main()
