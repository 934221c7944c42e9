"""Peak memory: the driver against the number of listed objects, a worker against the image size.

- Driver: plans a job over a fake, streamed listing of N keys (10k, 100k, 1M: no files, the
  lister is replaced) into a real local DST, then walks the persisted shards as the driver loop
  does; its peak RSS must not grow with N.
- Worker: runs the per-image pipeline (read, encode, decode, metrics, hash) on one RGB image of
  each size and reports the process's peak RSS.

Each measurement runs in a fresh subprocess (``ru_maxrss`` is a high-water mark).

    nice -n 19 python benchmarks/memory.py --keys 10000 100000 1000000 --megapixels 1 4 16

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def driver(n_keys: int) -> dict[str, float]:
    """Plan ``n_keys`` fake sources and iterate the plan; peak RSS in MiB."""
    from recodec.storage import SourceObject
    from recodec.tasks import planning

    def fake_listing(fs, root, extensions, exclude_prefix=None):  # noqa: ANN001, ANN202 - test double
        for i in range(n_keys):
            yield SourceObject(f"d{i // 1000:04d}/img{i:07d}.png", 100_000, f"etag-{i}")

    planning.list_sources = fake_listing
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        src.mkdir()
        summary = planning.plan_job(str(src), str(dst), "k", extension=".jxl", extensions=(".png",),
                                    shard_size=64, shard_bytes=1 << 40, job_info={})
        walked = sum(len(s.items) for s in planning.iter_shards(str(dst), "k", summary.shards))
    assert walked == n_keys
    return {"keys": n_keys, "shards": summary.shards, "peak_rss_mib": _peak_mib()}


def worker(megapixels: float, codec: str) -> dict[str, float]:
    """Run the pipeline on one ``megapixels`` RGB image; peak RSS in MiB."""
    import io

    import numpy as np
    from PIL import Image

    from recodec.config import RunConfig
    from recodec.job import prepare_job
    from recodec.pipeline import Pipeline

    side = int((megapixels * 1e6) ** 0.5)
    yy, xx = np.mgrid[0:side, 0:side]
    rgb = np.stack([(xx * 255 // side), (yy * 255 // side), ((xx + yy) % 256)], axis=2).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    data = buf.getvalue()
    del rgb, buf
    base = _peak_mib()
    Pipeline(prepare_job(RunConfig(src="s", dst="d", codec=codec))).process(data)
    return {"megapixels": side * side / 1e6, "codec": codec, "peak_rss_mib": _peak_mib(),
            "before_image_mib": base}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print both tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--megapixels", type=float, nargs="+", default=[1, 4, 16])
    ap.add_argument("--codec", default="jpeg")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        kind, value = args.child[0], args.child[1]
        if kind == "driver":
            print(json.dumps(driver(int(value))))
        else:
            import torch

            torch.set_num_threads(1)
            print(json.dumps(worker(float(value), args.codec)))
        return
    print("| listed keys | shards | driver peak RSS (MiB) |\n|---|---|---|")
    for n in args.keys:
        r = _child(["driver", str(n)])
        print(f"| {n:,} | {r['shards']:,} | {r['peak_rss_mib']:.0f} |", flush=True)
    print(f"\n| image (MP, RGB) | worker peak RSS (MiB) | before the image (MiB) |\n|---|---|---|")
    for mp in args.megapixels:
        r = _child(["worker", str(mp), "--codec", args.codec])
        print(f"| {r['megapixels']:.1f} | {r['peak_rss_mib']:.0f} | {r['before_image_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
