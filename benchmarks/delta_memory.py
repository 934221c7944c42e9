"""Benchmark: memory of an incremental re-run's delta at N objects (streamed listing vs the job's record).

Builds a job of N planned and recorded sources under a temp DST (plan shards of 10,000 items,
manifest parts with the pin columns), then computes the delta of a listing of N objects of which
1% changed and 1% are new, streamed from a generator.  Prints the peak RSS of the process, so run
each N in its own process:

    PYTHONPATH=. nice -n 19 python benchmarks/delta_memory.py 200000
    PYTHONPATH=. nice -n 19 python benchmarks/delta_memory.py 2000000

Results go to docs/performance.md ("Incremental re-run delta").
"""

from __future__ import annotations

import datetime as dt
import resource
import sys
import tempfile
import time
from collections.abc import Iterator

import pyarrow as pa

from recodec.layout import manifest_part_path
from recodec.manifest import MANIFEST_SCHEMA, PartSink
from recodec.storage import SourceObject, url_to_fs
from recodec.tasks import delta
from recodec.tasks.planning import PlanItem, PlanSummary, Shard, write_complete, write_shard

SHARD = 10_000


def _key(i: int) -> str:
    return f"p{i % 97:02d}/q{i % 89:02d}/img{i:09d}.tif"


def build(dst: str, n: int) -> PlanSummary:
    """Plan and record n sources of job 'bench'."""
    fs, root = url_to_fs(dst)
    sink = PartSink(dst)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    for s, start in enumerate(range(0, n, SHARD)):
        ids = range(start, min(n, start + SHARD))
        write_shard(fs, root, "bench", Shard(s, [PlanItem(_key(i), 1000 + i % 7, f"e{i}", _key(i) + ".jxl") for i in ids]))
        cols = {"job_key": ["bench"] * len(ids), "shard_id": [s] * len(ids), "source_key": [_key(i) for i in ids],
                "source_etag": [f"e{i}" for i in ids], "source_bytes": [1000 + i % 7 for i in ids],
                "status": ["ok"] * len(ids), "created_at": [now] * len(ids)}
        table = pa.table({f.name: pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(len(ids), f.type)
                          for f in MANIFEST_SCHEMA})
        sink.write_part(table, manifest_part_path(root, "bench", s))
    shards = (n + SHARD - 1) // SHARD
    write_complete(fs, root, "bench", shards, n, 0)
    return PlanSummary("bench", shards, n, 0, reused=True)


def listing(n: int) -> Iterator[SourceObject]:
    """The re-run's listing: every 100th source changed, n/100 new ones at the end."""
    for i in range(n):
        yield SourceObject(_key(i), 1000 + i % 7, f"e{i}" + ("x" if i % 100 == 0 else ""))
    for i in range(n, n + n // 100):
        yield SourceObject(_key(i), 1000, f"e{i}")


def main(n: int) -> None:
    """Build, compute the delta, print one result line."""
    with tempfile.TemporaryDirectory() as dst:
        t = time.perf_counter()
        summary = build(dst, n)
        build_s = time.perf_counter() - t
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        delta.iter_listing = lambda *a, **k: listing(n)  # a generator: nothing listed is held in Python
        t = time.perf_counter()
        _, report = delta.plan_delta("unused", dst, summary, run_id="bench", extension=".jxl",
                                     extensions=(".tif",), shard_size=64, shard_bytes=1 << 30, retry_failed=False)
        delta_s = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert report.changed == n // 100 and report.new == n // 100, report
        print(f"objects={n} build={build_s:.1f}s delta={delta_s:.1f}s new={report.new} changed={report.changed} "
              f"peak_rss_before_delta={rss_before:.0f}MiB peak_rss={peak:.0f}MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
