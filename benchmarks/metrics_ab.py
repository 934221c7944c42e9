"""A/B of ``compute_metrics`` CPU time: this checkout against an earlier git revision's metrics.

The revision's ``recodec/metrics.py`` and ``recodec/kernels.py`` are loaded from git beside the
current ones, then both run interleaved on 1024/1448 px tiles of a devset photo against a noisy
copy (median of ``--repeats`` runs, one torch thread), eager or compiled (``--mode sync``: each
side's compiled kernels, built before timing).  Prints one Markdown row per size.

    python benchmarks/metrics_ab.py --rev 0d025ae --mode 0
    python benchmarks/metrics_ab.py --rev 0d025ae --mode sync

Run by hand; results go to docs/performance.md.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from metrics_breakdown import test_images  # noqa: E402


def old_metrics(rev: str, folder: Path) -> ModuleType:
    """``recodec/metrics.py`` of ``rev``, importing the kernels module of the same revision."""
    for name in ("metrics", "kernels"):
        source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:recodec/{name}.py"], check=True,
                                capture_output=True, text=True).stdout
        source = source.replace("from recodec.kernels import", "from old_kernels import")
        (folder / f"old_{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    spec = importlib.util.spec_from_file_location("old_metrics", folder / "old_metrics.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["old_metrics"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def main() -> None:
    """Print the A/B table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the earlier revision (e.g. 0d025ae)")
    ap.add_argument("--mode", choices=["0", "sync"], default="0", help="RECODEC_COMPILE for both sides")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ["RECODEC_COMPILE"] = args.mode
    import torch

    from recodec import metrics as new

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        sides = {"rev": old_metrics(args.rev, Path(tmp)), "now": new}
        images = {side: test_images(side) for side in (512, 1024, 1448)}
        for module in sides.values():  # build (sync) or warm every side's kernels first
            for ref, dec in images.values():
                module.compute_metrics(ref, dec)
                module.compute_metrics(ref, dec)
        times: dict[tuple[int, str], list[float]] = {}
        for _ in range(args.repeats):
            for side, (ref, dec) in images.items():
                for name, module in sides.items():
                    start = time.process_time()
                    module.compute_metrics(ref, dec)
                    times.setdefault((side, name), []).append(time.process_time() - start)
    print(f"| image | {args.rev} ms | now ms | speed-up |\n|---|---|---|---|")
    for side in images:
        a, b = (sorted(times[(side, n)])[len(times[(side, n)]) // 2] * 1e3 for n in ("rev", "now"))
        print(f"| {side * side / 1e6:.2f} MP | {a:.1f} | {b:.1f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
