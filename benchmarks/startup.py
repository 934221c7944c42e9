"""Where `recodec run` on one image spends its wall time, from process start to process end.

Two measurements, each the median of ``--repeats`` fresh processes:

* **steps**: a child process times each start-up step in sequence -- interpreter and imports,
  Prefect's temporary API (started and waited for), the executor (the in-process worker's
  imports, or Ray), the flow on one image (listing, planning, worker start, the image) -- and
  the parent adds the exit (flow returned -> process gone: Prefect's flush, the server's stop,
  Ray's shutdown).  ``--executor ray`` times the Ray path.
* **end to end**: ``recodec run SRC DST --codec jpeg`` wall time as a user sees it, for the
  default (``auto``: a one-image job runs in-process) and ``--executor ray``; with
  ``--baseline CHECKOUT`` also that checkout's ``recodec run``, interleaved, so that
  before/after share the machine's load.  The load average is printed with the figures.

    nice -n 19 python benchmarks/startup.py --repeats 3 [--baseline /tmp/base]

Run by hand; results go to docs/performance.md ("Start-up").  Not part of the test suite.
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
DEVSET_PHOTO = REPO.parent / "shared" / "data" / "devset" / "photo_coffee.png"  # 0.4 MP
PHOTO = DEVSET_PHOTO if DEVSET_PHOTO.exists() else sorted((REPO / "samples" / "archive" / "photos").glob("*.png"))[0]


def steps(src: str, dst: str, executor: str) -> dict[str, float]:
    """Seconds of each start-up step, in sequence, in this (fresh) process; ``end`` is a wall clock."""
    from recodec.tasks.jobs import seconds_since_process_start

    marks = {"interpreter": seconds_since_process_start()}
    t = time.perf_counter()
    import recodec.cli  # noqa: F401

    marks["import recodec.cli"] = time.perf_counter() - t
    t = time.perf_counter()
    from recodec.flows.lifecycle import TemporaryAPI
    from recodec.flows.recompress import recompress

    marks["import Prefect + flows"] = time.perf_counter() - t
    t = time.perf_counter()
    api = TemporaryAPI.start()
    assert api is not None, "unset PREFECT_API_URL: this times Prefect's temporary API"
    api.wait()
    marks["Prefect temporary API (own process)"] = time.perf_counter() - t
    from recodec.config import RunConfig
    from recodec.job import prepare_job
    from recodec.tasks.jobs import start_executor

    t = time.perf_counter()
    config = start_executor(prepare_job(RunConfig(src=src, dst=dst, codec="jpeg", workers=1, executor=executor)))
    marks["Ray start" if config.executor == "ray" else "in-process worker imports (torch, codec)"] = \
        time.perf_counter() - t
    t = time.perf_counter()
    with api.serving():
        summary = recompress(config)
    marks["flow: list, plan, worker start, 1 image"] = time.perf_counter() - t
    marks["of which work"] = summary["work_seconds"]
    marks["end"] = time.time()
    return marks


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, dict[str, object], float]:
    """Wall seconds of ``cmd``, its JSON output, and the wall clock when it ended."""
    t = time.perf_counter()
    # cwd "/": `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd="/")
    wall, end = time.perf_counter() - t, time.time()
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return wall, json.loads(out.stdout.strip().splitlines()[-1] if "--child" in cmd else out.stdout), end


def main() -> None:
    """Print the step table and the end-to-end wall times (medians)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--executor", choices=["local", "ray"], default="local", help="executor the steps time")
    ap.add_argument("--baseline", type=Path, help="another checkout whose `recodec run` is timed alongside")
    ap.add_argument("--image", type=Path, default=PHOTO)
    ap.add_argument("--no-steps", action="store_true", help="only the end-to-end runs")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import atexit

        atexit.register(os._exit, 0)  # registered first, so it runs last: the exit `recodec run` has (cli.main)
        print(json.dumps(steps(*args.child)), flush=True)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(OMP_NUM_THREADS="1", PREFECT_LOGGING_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               RAY_USAGE_STATS_ENABLED="0", DO_NOT_TRACK="1")
    ours, base = dict(env, PYTHONPATH=str(REPO)), dict(env, PYTHONPATH=str(args.baseline or REPO))
    runs: list[dict[str, float]] = []
    walls: dict[str, list[float]] = {}
    startup: dict[str, list[float]] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy(args.image, src)
        run = [sys.executable, "-m", "recodec", "run", str(src)]
        for i in range(args.repeats):
            if not args.no_steps:
                _, marks, end = _run([sys.executable, __file__, "--child", str(src), f"{tmp}/s{i}", args.executor],
                                     ours)
                marks["exit (flow returned -> process gone)"] = end - marks.pop("end")
                runs.append(marks)
            variants = {"auto (in-process)": (run + [f"{tmp}/a{i}", "--codec", "jpeg", "--json"], ours),
                        "--executor ray": (run + [f"{tmp}/r{i}", "--codec", "jpeg", "--executor", "ray", "--json"],
                                           ours)}
            if args.baseline:
                variants["baseline"] = (run + [f"{tmp}/b{i}", "--codec", "jpeg", "--json"], base)
            for name, (cmd, e) in variants.items():
                wall, summary, _ = _run(cmd, e)
                walls.setdefault(name, []).append(wall)
                startup.setdefault(name, []).append(float(summary["startup_seconds"]))  # type: ignore[arg-type]
            load.append(os.getloadavg()[0])
    if runs:
        print(f"steps ({args.executor}), medians of {args.repeats}:\n\n| step (in sequence) | seconds |\n|---|---|")
        for key in runs[0]:
            print(f"| {key} | {statistics.median(r[key] for r in runs):.2f} |")
        total = statistics.median(sum(v for k, v in r.items() if k != "of which work") for r in runs)
        print(f"| **sum** | {total:.2f} |\n")
    print("| `recodec run`, one image | wall (median) | startup_seconds | walls |\n|---|---|---|---|")
    for name, values in walls.items():
        print(f"| {name} | {statistics.median(values):.1f} | {statistics.median(startup[name]):.1f} | "
              + ", ".join(f"{v:.1f}" for v in values) + " |")
    print(f"\nload average (1 min) during the runs: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
