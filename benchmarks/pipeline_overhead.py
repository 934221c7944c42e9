"""Pipeline overhead: `recodec run` vs bare multiprocessing loops.

Two comparisons, steady-state images/s (start-up excluded and reported separately):

- ``--bare same`` (default): the bare loop does the *same* work -- read, decode, encode, decode
  the output, the same metrics and hashes, write.  The pipeline adds listing, planning, Ray
  actors, manifests and commits.  Run on generated 256x256 crops (``--archive crops``).
- ``--bare codec``: the bare loop does only read -> encode -> decode -> write (no metrics, no
  hashes): what verifying every image costs on top of the codec.  Run on full-size photos
  (``--archive photos``: the devset photos and the training photos, 277 images).

    python benchmarks/pipeline_overhead.py --images 500 --workers 2
    python benchmarks/pipeline_overhead.py --archive photos --bare codec --repeats 1

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO / "samples" / "archive" / "photos").glob("*.png"))
DATA = REPO.parent / "shared" / "data"
PHOTOS = [*sorted((DATA / "devset").glob("photo_*.png")),
          *sorted((DATA / "train" / "clic2025-validation").glob("*.png")),
          *sorted((DATA / "train" / "cid22-512").glob("*.png"))]


def copy_photos(root: Path, n: int) -> None:
    """Copy up to ``n`` full-size photos (devset + training photos) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(PHOTOS[:n]):
        shutil.copyfile(path, root / f"p{i:04d}_{path.name}")


def make_archive(root: Path, n: int, size: int) -> None:
    """Write ``n`` PNG crops of ``size``x``size`` cut from the bundled photos."""
    from PIL import Image

    photos = [np.asarray(Image.open(p).convert("RGB")) for p in SOURCES]
    rng = np.random.default_rng(0)
    for i in range(n):
        img = photos[i % len(photos)]
        y = int(rng.integers(0, img.shape[0] - size))
        x = int(rng.integers(0, img.shape[1] - size))
        d = root / f"d{i // 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[y:y + size, x:x + size]).save(d / f"img{i:05d}.png")


_CTX: dict = {}


def _init(codec: str, params: dict, out: str) -> None:
    import torch

    torch.set_num_threads(1)  # Ray actors run with one CPU each; be fair
    from recodec.codecs import get_codec

    _CTX.update(codec=get_codec(codec), params=params, out=Path(out))
    _CTX["codec"].load()


def _codec_only(path: str) -> int:
    """Read, decode, encode, decode the output, write: the codec's own work, nothing measured."""
    from recodec.container import decode_output, encode_output
    from recodec.formats.source import read_image

    image = read_image(Path(path).read_bytes())
    payload = encode_output(image, _CTX["codec"], _CTX["params"], container="raw")
    decode_output(payload, codec=_CTX["codec"])
    (_CTX["out"] / (Path(path).name + ".out")).write_bytes(payload)
    return len(payload)


def _one(path: str) -> float:
    from recodec.digest import pixel_sha256, sha256_hex
    from recodec.container import decode_output, encode_output
    from recodec.formats.source import read_image
    from recodec.metrics import compute_metrics

    data = Path(path).read_bytes()
    image = read_image(data)
    payload = encode_output(image, _CTX["codec"], _CTX["params"], container="raw")
    decoded = decode_output(payload, codec=_CTX["codec"])
    m = compute_metrics(image.array, decoded, bit_depth=image.bit_depth)
    pixel_sha256(decoded)
    sha256_hex(payload)
    out = _CTX["out"] / (Path(path).name + ".out")
    out.write_bytes(payload)
    return m.psnr


def bare_loop(files: list[str], codec: str, params: dict, workers: int, out: Path,
              work: str = "same") -> tuple[float, float]:
    """Startup seconds and steady-state images/s of a plain multiprocessing pool."""
    one = _one if work == "same" else _codec_only
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(codec, params, str(out))) as pool:
        pool.map(one, files[:workers])  # warm every process (imports, codec load)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        pool.map(one, files, chunksize=8)
        work = time.perf_counter() - t1
    return startup, len(files) / work


def pipeline(src: Path, dst: Path, codec: str, params: dict, workers: int, shard: int,
             compile_mode: str = "auto") -> tuple[float, float, int]:
    """Startup seconds, steady-state images/s and ok count of `recodec run`."""
    cmd = [sys.executable, "-m", "recodec", "run", str(src), str(dst), "--codec", codec,
           "--workers", str(workers), "--shard-size", str(shard), "--allow-growth", "--json"]
    for k, v in params.items():
        cmd += ["--param", f"{k}={v}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", RECODEC_COMPILE=compile_mode)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"recodec run failed:\n{proc.stderr[-3000:]}")
    s = json.loads(proc.stdout)
    if not s["work_seconds"]:
        raise SystemExit(f"recodec run did no work: {json.dumps(s)}\n{proc.stderr[-3000:]}")
    return wall - s["work_seconds"], s["images_this_run"] / s["work_seconds"], s["ok"]


def warm_kernels(files: list[str], tmp: Path, codec: str, params: dict, workers: int) -> None:
    """One small `recodec run` that compiles the metric kernels into Inductor's on-disk cache.

    What any machine that has run recodec before already has; without it the measured run would
    also pay the one-time C++ compile (tens of seconds of CPU per kernel) in its workers.
    """
    src = tmp / "warm-src"
    src.mkdir(parents=True, exist_ok=True)
    for path in files[: 2 * workers]:
        shutil.copyfile(path, src / Path(path).name)
    pipeline(src, tmp / "warm-dst", codec, params, workers, 1, compile_mode="sync")


def work_breakdown(dst: Path) -> dict[str, float]:
    """Mean per-image seconds of each manifest timing column of a finished run (worker CPU side)."""
    from recodec.manifest import read_manifest

    cols = ["read_seconds", "encode_seconds", "decode_seconds", "metrics_seconds", "hash_seconds", "write_seconds"]
    table = read_manifest(str(dst)).select(cols)
    return {c: sum(v or 0.0 for v in table.column(c).to_pylist()) / max(1, table.num_rows) for c in cols}


def main() -> None:
    """Run both sides on the same generated archive and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--archive", choices=["crops", "photos"], default="crops")
    ap.add_argument("--bare", choices=["same", "codec"], default="same",
                    help="same: the bare loop does the same work; codec: read/encode/decode/write only")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=32)
    ap.add_argument("--codec", default="jpeg")
    ap.add_argument("--param", action="append", default=["quality=85"])
    ap.add_argument("--no-warm", dest="warm", action="store_false",
                    help="skip the warm-up run that fills the compiled-kernel cache")
    ap.add_argument("--repeats", type=int, default=2,
                    help="Pairs of runs, alternating the order (bare, pipeline, pipeline, bare...) so a "
                         "change in background load hits both sides alike.")
    args = ap.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    tmp = Path(tempfile.mkdtemp(prefix="recodec-bench-"))
    try:
        src = tmp / "src"
        if args.archive == "photos":
            copy_photos(src, args.images)
        else:
            make_archive(src, args.images, args.size)
        files = sorted(str(p) for p in src.rglob("*.png"))
        coerced = __import__("recodec.codecs", fromlist=["get_codec"]).get_codec(args.codec).resolve_params(params)
        if args.warm:
            warm_kernels(files, tmp, args.codec, params, args.workers)
        bare: list[tuple[float, float]] = []
        pipe: list[tuple[float, float]] = []
        for i in range(args.repeats):
            order = ("bare", "pipe") if i % 2 == 0 else ("pipe", "bare")
            for side in order:
                if side == "bare":
                    bare.append(bare_loop(files, args.codec, coerced, args.workers, tmp / f"bare{i}", args.bare))
                else:
                    start, rate, ok = pipeline(src, tmp / f"dst{i}", args.codec, params, args.workers,
                                               args.shard_size)
                    assert ok == len(files), f"pipeline wrote {ok} of {len(files)}"
                    pipe.append((start, rate))
        b_rate = statistics.median(r for _, r in bare)
        p_rate = statistics.median(r for _, r in pipe)
        what = "full-size photos" if args.archive == "photos" else f"{args.size}x{args.size} RGB crops"
        print(f"images: {len(files)} {what}, bare loop work: {args.bare}, codec {args.codec} {params}, "
              f"{args.workers} workers, shard size {args.shard_size}, {args.repeats} alternating pairs")
        print("bare multiprocessing : " + ", ".join(f"{r:.2f}" for _, r in bare) + " images/s"
              f"   (startup {statistics.median(s for s, _ in bare):.1f} s)")
        print("recodec run          : " + ", ".join(f"{r:.2f}" for _, r in pipe) + " images/s"
              f"   (startup {statistics.median(s for s, _ in pipe):.1f} s: Prefect, Ray, listing, planning)")
        bar = "0.85" if args.bare == "same" else "0.5"
        print(f"steady-state ratio   : {p_rate / b_rate:.3f} (medians; target >= {bar})")
        spent = work_breakdown(tmp / "dst0")
        codec_only = sum(spent[c] for c in ("read_seconds", "encode_seconds", "decode_seconds", "write_seconds"))
        print("per-image work (manifest, ms): " + ", ".join(f"{k[:-8]} {v * 1e3:.1f}" for k, v in spent.items())
              + f"; codec-only share {codec_only / sum(spent.values()):.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
