"""Time of one ``overfit`` training step (forward, backward, Adam) at full, 1/2 and 1/4 resolution.

The figures behind docs/overfitted.md's "Training step layout" and the encoder's
``coarse_step_cost``.  ``--rev`` times the same step on an older revision as well (exported with
``git archive``, imported from there in a child process), interleaved, for a same-run A/B::

    python benchmarks/overfitted_step.py --rev 4ba18bc

Run by hand on one thread; absolute times on a shared machine are noisy, read the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(height: int, width: int, bf16: bool, repeats: int) -> dict[str, float]:
    """Seconds per step of the fast preset's model at each resolution this code supports."""
    import inspect

    import torch

    from recodec.codecs.overfit import encoder as E
    from recodec.codecs.overfit import network as N

    torch.set_num_threads(1)
    arch = E.PRESETS["fast"].arch(3, height, width)
    torch.manual_seed(0)
    model = N.OverfitModel(arch, height, width)
    x = torch.rand(1, 3, height, width)
    opt = torch.optim.Adam(model.parameters(), 0.01)
    gen = torch.Generator().manual_seed(0)
    coarse = "skip" in inspect.signature(model.forward).parameters
    out = {}
    for skip in (0, 1, 2) if coarse else (0,):
        target = x if skip == 0 else torch.nn.functional.avg_pool2d(x, 2**skip, ceil_mode=True)

        def step() -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                rec, bits = model("noise", gen, skip) if coarse else model("noise", gen)
            loss = 1000 * ((rec.float() - target) ** 2).mean() + bits.float() / (height * width)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        step()
        t0 = time.perf_counter()
        for _ in range(repeats):
            step()
        out[f"1/{2**skip}"] = (time.perf_counter() - t0) / repeats
    return out


def main() -> None:
    """Print one JSON line per (code, dtype, round)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(512, 768), metavar=("H", "W"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rev", help="also time this git revision")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(*args.size, args.bf16, args.repeats)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        codes = {"now": str(ROOT)}
        if args.rev:
            subprocess.run(f"git archive {args.rev} recodec | tar -x -C {tmp}", shell=True, cwd=ROOT, check=True)
            codes[args.rev] = tmp
        for rnd in range(args.rounds):
            for name, path in codes.items():
                for bf16 in (False, True):
                    cmd = [sys.executable, __file__, "--child", "--size", *map(str, args.size),
                           "--repeats", str(args.repeats), *(["--bf16"] if bf16 else [])]
                    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
                    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    row = {"code": name, "dtype": "bf16" if bf16 else "float32", "round": rnd,
                           "seconds_per_step": json.loads(res.stdout.strip().splitlines()[-1])}
                    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
