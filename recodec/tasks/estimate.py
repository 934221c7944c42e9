"""Estimate before committing: code a random sample of SRC and extrapolate to the whole archive.

::

    list SRC (streaming) --reservoir sample of n keys (seeded)--> n plan items, N and B (count, bytes)
          |
    the job's own per-image pipeline (ShardContext.process_image) into a temporary DST, in process
          |
    saved bytes:  ratio estimator  R = sum(saved_i) / sum(src_i),  total = R * B
    compute time: mean seconds per image * N
    95% intervals: normal approximation with the finite-population correction (1 - n/N);
    cost per month: saved GB * USD/GB-month of the chosen storage class (recodec.report.prices)

An image that fails or is skipped saves nothing, exactly as in a real run.  The compute time is
the time of this machine's single process; divide by the workers of the real cluster.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from recodec.config import RunConfig
from recodec.storage import SourceObject
from recodec.tasks.planning import PlanItem, iter_listing

Z95 = 1.959964


@dataclass
class Interval:
    """A point estimate with its 95% interval."""

    estimate: float
    low: float
    high: float


def reservoir(items: Iterator[SourceObject], n: int, seed: int) -> tuple[list[SourceObject], int, int]:
    """A uniform sample of ``n`` items of a stream (Algorithm R), plus the stream's count and bytes."""
    rng = random.Random(seed)
    sample: list[SourceObject] = []
    count = nbytes = 0
    for obj in items:
        count += 1
        nbytes += obj.size
        if len(sample) < n:
            sample.append(obj)
        else:
            j = rng.randrange(count)
            if j < n:
                sample[j] = obj
    return sample, count, nbytes


def ratio_interval(saved: list[float], sizes: list[float], total_bytes: int, population: int) -> Interval:
    """Total saved bytes by the ratio estimator, with a 95% interval."""
    n = len(saved)
    if n == 0 or sum(sizes) == 0:
        return Interval(0.0, 0.0, 0.0)
    r = sum(saved) / sum(sizes)
    est = r * total_bytes
    if n < 2:
        return Interval(est, 0.0, float(total_bytes))
    mean_size = sum(sizes) / n
    resid = [s - r * x for s, x in zip(saved, sizes)]
    var_r = sum(d * d for d in resid) / (n - 1) / (n * mean_size * mean_size) * max(0.0, 1 - n / population)
    half = Z95 * math.sqrt(var_r) * total_bytes
    return Interval(est, max(0.0, est - half), min(float(total_bytes), est + half))


def mean_interval(values: list[float], population: int) -> Interval:
    """Population total of ``values`` (mean times N) with a 95% interval."""
    n = len(values)
    if n == 0:
        return Interval(0.0, 0.0, 0.0)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z95 * sd / math.sqrt(n) * math.sqrt(max(0.0, 1 - n / population)) * population
    return Interval(mean * population, max(0.0, mean * population - half), mean * population + half)


def _code_sample(config: RunConfig, sample: list[SourceObject]) -> list[dict[str, Any]]:
    """Run the job's per-image pipeline on the sample, writing outputs to a throwaway DST."""
    from recodec.job import prepare_job
    from recodec.tasks.shard import ShardContext

    rows = []
    with tempfile.TemporaryDirectory(prefix="recodec-estimate-") as scratch:
        job = prepare_job(replace(config, dst=scratch))
        ctx = ShardContext(job, worker="estimate")
        if sample:  # warm-up (first-call imports and set-up), not timed: a real worker pays it once
            first = sample[0]
            ctx.process_image(0, PlanItem(first.key, first.size, first.etag, f"warmup{job.plan_extension}"))
        for i, obj in enumerate(sample):
            t0 = time.perf_counter()
            row = ctx.process_image(0, PlanItem(obj.key, obj.size, obj.etag, f"sample-{i:06d}{job.plan_extension}"))
            row["wall_seconds"] = time.perf_counter() - t0
            rows.append(row)
    return rows


def estimate(config: RunConfig, *, sample: int = 100, seed: int = 0,
             report_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Code a random sample of ``config.src`` and extrapolate savings, cost and compute time."""
    from collections import Counter

    from recodec.errors import reason_of
    from recodec.report.prices import monthly_cost, price_table

    picked, population, total_bytes = reservoir(
        iter_listing(config.src, config.dst, tuple(config.extensions), config.storage_options), sample, seed)
    rows = _code_sample(config, picked)
    saved = [float(r["source_bytes"] - r["dest_bytes"]) if r["status"] == "ok" else 0.0 for r in rows]
    sizes = [float(r["source_bytes"]) for r in rows]
    saved_iv = ratio_interval(saved, sizes, total_bytes, population)
    time_iv = mean_interval([r["wall_seconds"] for r in rows], population)
    prices, storage_class = price_table(report_config)
    price = prices[storage_class]
    return {
        "src": config.src, "codec": config.codec, "target": config.target, "seed": seed,
        "population_images": population, "population_bytes": total_bytes, "sample_images": len(rows),
        "sample_ok": sum(r["status"] == "ok" for r in rows),
        "sample_outcomes": dict(Counter(reason_of(r.get("error")) or r["status"] for r in rows)),
        "saved_bytes": vars(saved_iv),
        "saved_fraction": vars(Interval(*(v / total_bytes if total_bytes else 0.0 for v in vars(saved_iv).values()))),
        "storage_class": storage_class, "usd_per_gb_month": price,
        "saved_usd_per_month": {k: monthly_cost(v, price) for k, v in vars(saved_iv).items()},
        "compute_seconds_one_process": vars(time_iv),
        "mean_psnr": _mean([r.get("psnr") for r in rows if r["status"] == "ok"]),
    }


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None
