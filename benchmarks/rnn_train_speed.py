"""Training step time of the rnn codec on the CPU: fp32 and bf16 autocast, each with and without channels_last.

One optimiser step = K iterations forward and backward (full BPTT here), Adam; the first
step of each mode is warm-up and excluded.

    python benchmarks/rnn_train_speed.py --crop 128 --batch 8 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from recodec.codecs.rnn.models import Arch, RecurrentCodec


def step_seconds(crop: int, batch: int, repeats: int, bf16: bool, channels_last: bool) -> float:
    """Median seconds per training step in one configuration."""
    torch.manual_seed(0)
    model = RecurrentCodec(Arch())
    x = torch.rand(batch, 3, crop, crop)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            recs, _ = model(x)
            loss = sum((r.float() - x).abs().mean() for r in recs)
        opt.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        opt.step()
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = {name: step_seconds(args.crop, args.batch, args.repeats, bf16, cl)
           for name, bf16, cl in (("fp32", False, False), ("fp32+channels_last", False, True), ("bf16", True, False),
                                   ("bf16+channels_last", True, True))}
    print(json.dumps({"crop": args.crop, "batch": args.batch, "seconds_per_step": res,
                      "speedup_vs_fp32": {k: res["fp32"] / v for k, v in res.items()}}, indent=1))


if __name__ == "__main__":
    main()
