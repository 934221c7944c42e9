"""Benchmark: `recodec report` over a synthetic 1M-row manifest (DuckDB aggregates only).

Writes N rows (default 1,000,000) as 16 committed manifest parts plus verdicts under a temp DST,
then times build_report() and write_html() and records the peak RSS.  Run:

    PYTHONPATH=. nice -n 19 python benchmarks/report_1m.py [N]

Results go to docs/performance.md ("Report on a 1M-row manifest").
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from recodec.layout import manifest_part_path, reconcile_part_path
from recodec.manifest import MANIFEST_SCHEMA, RECONCILE_SCHEMA, PartSink
from recodec.report import build_report, write_html


def _part(rng: np.random.Generator, start: int, n: int) -> pa.Table:
    idx = np.arange(start, start + n)
    src = rng.integers(50_000, 5_000_000, n)
    dst = (src * rng.uniform(0.05, 0.6, n)).astype(np.int64)
    status = np.where(rng.random(n) < 0.02, "failed", "ok")
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    cols = {
        "schema_version": pa.array(np.ones(n, np.int16)),
        "run_id": pa.array([f"run{d}" for d in idx % 30]),
        "job_key": pa.array(["job"] * n),
        "shard_id": pa.array(idx // 64),
        "source_uri": pa.array([f"s3://archive/p{i % 7}/q{i % 13}/img{i:08d}.tif" for i in idx]),
        "source_key": pa.array([f"p{i % 7}/q{i % 13}/img{i:08d}.tif" for i in idx]),
        "source_bytes": pa.array(src), "dtype": pa.array(np.where(idx % 3 == 0, "uint16", "uint8")),
        "bands": pa.array(np.where(idx % 5 == 0, 4, 3)), "codec": pa.array(np.where(idx % 2 == 0, "jxl", "avif")),
        "dest_uri": pa.array([f"s3://out/img{i:08d}.jxl" for i in idx]), "dest_bytes": pa.array(dst),
        "bpp": pa.array(rng.uniform(0.2, 4, n)), "psnr": pa.array(rng.normal(42, 3, n)),
        "ssim": pa.array(rng.uniform(0.9, 1, n)), "max_abs_error": pa.array(rng.integers(0, 40, n).astype(float)),
        "status": pa.array(status), "error": pa.array(np.where(status == "failed", "timeout: slow", None)),
        "created_at": pa.array([t0 + dt.timedelta(days=int(d)) for d in idx % 30], pa.timestamp("us", tz="UTC")),
    }
    return pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)).cast(f.type) for f in MANIFEST_SCHEMA},
                    schema=MANIFEST_SCHEMA)


def main(n: int = 1_000_000, parts: int = 16) -> None:
    """Build the synthetic DST, time the report, print one result line."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as dst:
        sink = PartSink(dst)
        per = n // parts
        t = time.perf_counter()
        for p in range(parts):
            table = _part(rng, p * per, per)
            sink.write_part(table, manifest_part_path(dst, "job", p))
            verdicts = pa.table({"check_id": ["c"] * per, "run_id": table["run_id"], "job_key": table["job_key"],
                                 "dest_uri": table["dest_uri"], "verdict": ["ok"] * per,
                                 "checked_at": pa.array([dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)] * per,
                                                        pa.timestamp("us", tz="UTC"))})
            verdicts = pa.table({f.name: verdicts[f.name] if f.name in verdicts.column_names
                                 else pa.nulls(per, f.type) for f in RECONCILE_SCHEMA}, schema=RECONCILE_SCHEMA)
            sink.write_part(verdicts, reconcile_part_path(dst, "c", p))
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        rep = build_report(dst)
        report_s = time.perf_counter() - t
        t = time.perf_counter()
        write_html(rep, f"{dst}/report.html")
        html_s = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"rows={per * parts} parts={parts} synth={build_s:.1f}s report={report_s:.1f}s html={html_s:.1f}s "
              f"peak_rss={peak:.0f}MiB images={rep['totals']['images']}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
