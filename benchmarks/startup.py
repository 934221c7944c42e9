"""Where `recodec run` on one image spends its start-up, and the wall time of the whole run.

A child process times each start-up step in sequence -- interpreter and imports, Prefect's
temporary API server, Ray, then the flow on one image (listing, planning, actors, the image) --
and separately ``recodec run`` (which starts Prefect's API and Ray in parallel and the actors
while listing) is timed end to end.  Each figure is the median of ``--repeats`` fresh processes.

    nice -n 19 python benchmarks/startup.py --repeats 3

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTO = sorted((REPO / "samples" / "archive" / "photos").glob("*.png"))[0]


def steps(src: str, dst: str) -> dict[str, float]:
    """Seconds of each start-up step, in sequence, in this (fresh) process."""
    from recodec.tasks.jobs import seconds_since_process_start

    marks = {"interpreter": seconds_since_process_start()}
    t = time.perf_counter()
    import recodec.cli  # noqa: F401

    marks["import recodec.cli"] = time.perf_counter() - t
    t = time.perf_counter()
    from recodec.flows.recompress import recompress

    marks["import Prefect + flows"] = time.perf_counter() - t
    t = time.perf_counter()
    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().start()
    marks["Prefect temporary API"] = time.perf_counter() - t
    t = time.perf_counter()
    from recodec.tasks.workers import ensure_ray

    ensure_ray(None)
    marks["Ray start"] = time.perf_counter() - t
    from recodec.config import RunConfig

    t = time.perf_counter()
    summary = recompress(RunConfig(src=src, dst=dst, codec="jpeg", workers=1))
    marks["flow: list, plan, actors, 1 image"] = time.perf_counter() - t
    marks["of which work"] = summary["work_seconds"]
    return marks


def main() -> None:
    """Print the step table and the end-to-end wall time."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=2)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(steps(*args.child)))
        return
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    runs: list[dict[str, float]] = []
    walls: list[float] = []
    reported: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy(PHOTO, src)
        for i in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, "--child", str(src), f"{tmp}/a{i}"], env=env,
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "recodec", "run", str(src), f"{tmp}/b{i}", "--codec",
                                  "jpeg", "--workers", "1", "--json"], env=env, capture_output=True, text=True,
                                 check=True)
            walls.append(time.perf_counter() - t)
            reported.append(json.loads(out.stdout)["startup_seconds"])
    print("| step (in sequence) | seconds (median) |\n|---|---|")
    for key in runs[0]:
        print(f"| {key} | {statistics.median(r[key] for r in runs):.1f} |")
    total = statistics.median(sum(v for k, v in r.items() if k != "of which work") for r in runs)
    print(f"| **sum, sequential** | {total:.1f} |")
    print(f"\n`recodec run` on one image: wall {statistics.median(walls):.1f} s, summary startup_seconds "
          f"{statistics.median(reported):.1f} s (medians of {args.repeats})")


if __name__ == "__main__":
    main()
