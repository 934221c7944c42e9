"""S3 load test: many small PNGs through recodec while S3 throttles, fails and resets connections.

Starts an in-process moto S3 server and the fault proxy of ``tests/reliability/faults.py`` in front
of it, uploads N synthetic 32x32 PNGs (straight to moto), then runs the ``recompress`` flow and
``reconcile`` through the proxy, which answers a fraction of requests with ``503 SlowDown``,
``500 InternalError`` or a TCP reset.  Finally ``audit`` checks the invariants straight against
moto (ground truth).  Prints images/s, rows by status, faults injected (= retries the clients had
to make) and the audit result.

    python benchmarks/load_s3.py                     # 10,000 images, 2% 503, 1% 500, 0.5% resets
    python benchmarks/load_s3.py --images 2000 --json

Run by hand; results go to docs/reliability.md.  ``tests/reliability/test_load.py`` runs the same
function on a few hundred images.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make `tests.reliability` importable
    sys.path.insert(0, str(REPO))

from tests.reliability.faults import FaultProxy, FaultRule, png_bytes  # noqa: E402

#: Fraction of requests answered with each fault (SlowDown 503, InternalError 500, TCP reset).
DEFAULT_RATES = {"slowdown": 0.02, "internal": 0.01, "reset": 0.005}


@dataclass
class LoadResult:
    """Figures of one load run."""

    images: int
    workers: int
    shard_size: int
    upload_seconds: float
    run_seconds: float
    startup_seconds: float
    work_seconds: float
    reconcile_seconds: float
    audit_seconds: float
    rows_by_status: dict[str, int]
    reasons: dict[str, int]
    requests: dict[str, int]
    injected: dict[str, int]
    proxy_upstream_errors: int
    audit_ok: bool
    violations: list[dict[str, str]]
    reconcile: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        """Throughput over the whole flow run (listing, planning, actor start-up included)."""
        return self.images / self.run_seconds if self.run_seconds else 0.0

    @property
    def steady_images_per_second(self) -> float:
        """Throughput once the actors are up (the flow's ``work_seconds``)."""
        return self.images / self.work_seconds if self.work_seconds else 0.0


def upload_synthetic(storage_options: dict[str, Any], prefix: str, n: int, size: int = 32,
                     batch: int = 500) -> None:
    """Upload ``n`` distinct ``size`` x ``size`` PNGs under ``prefix`` (an s3:// URL), concurrently."""
    import s3fs

    fs = s3fs.S3FileSystem(**storage_options)
    root = prefix.removeprefix("s3://")
    for start in range(0, n, batch):
        fs.pipe({f"{root}/d{i // 1000:03d}/img{i:06d}.png": png_bytes(i, size, size)
                 for i in range(start, min(n, start + batch))})


def _fresh_clients() -> None:
    """Forget cached filesystems (and their listing caches), as separate CLI invocations would."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


def run_load(n: int, *, s3_endpoint: str, storage_options: dict[str, Any], bucket_url: str,
             rates: dict[str, float] | None = None, extra_rules: list[FaultRule] | None = None,
             workers: int = 2, shard_size: int = 64, size: int = 32, seed: int = 0) -> LoadResult:
    """Upload ``n`` PNGs, recompress and reconcile them through a fault proxy, audit; return figures.

    ``rates`` gives each fault kind's share of requests; ``extra_rules`` are checked before them.
    """
    from recodec.config import ReconcileConfig, RunConfig
    from recodec.flows.reconcile import reconcile
    from recodec.flows.recompress import recompress
    from recodec.manifest import read_manifest
    from recodec.tasks.audit import audit

    rates = DEFAULT_RATES if rates is None else rates
    src, dst = f"{bucket_url}/load-src", f"{bucket_url}/load-dst"
    t0 = time.perf_counter()
    upload_synthetic(storage_options, src, n, size)
    upload_seconds = time.perf_counter() - t0

    rules = list(extra_rules or []) + [FaultRule(kind, rate=rate) for kind, rate in rates.items() if rate > 0]
    with FaultProxy(s3_endpoint, rules, seed=seed) as proxy:
        faulty = {**storage_options, "client_kwargs": {**storage_options.get("client_kwargs", {}),
                                                       "endpoint_url": proxy.url}}
        config = RunConfig(src=src, dst=dst, codec="jpeg", quality=80, shard_size=shard_size, workers=workers,
                           allow_growth=True, storage_options=faulty).validate()
        t0 = time.perf_counter()
        summary = recompress(config)
        run_seconds = time.perf_counter() - t0
        _fresh_clients()
        t0 = time.perf_counter()
        verdicts = reconcile(ReconcileConfig(dst, workers=workers, storage_options=faulty))
        reconcile_seconds = time.perf_counter() - t0
        stats = proxy.stats

    _fresh_clients()
    t0 = time.perf_counter()
    report = audit(src, dst, storage_options)  # straight to moto: the ground truth
    audit_seconds = time.perf_counter() - t0
    rows = read_manifest(dst, storage_options).to_pylist()
    reasons = Counter(r["error"].split(":", 1)[0] for r in rows if r["error"])
    return LoadResult(
        images=n, workers=workers, shard_size=shard_size, upload_seconds=round(upload_seconds, 2),
        run_seconds=round(run_seconds, 2), startup_seconds=summary["startup_seconds"],
        work_seconds=summary["work_seconds"], reconcile_seconds=round(reconcile_seconds, 2),
        audit_seconds=round(audit_seconds, 2), rows_by_status=dict(Counter(r["status"] for r in rows)),
        reasons=dict(reasons), requests=dict(stats.requests), injected=dict(stats.injected),
        proxy_upstream_errors=stats.upstream_errors, audit_ok=report.ok, violations=report.violations[:20],
        reconcile={k: verdicts[k] for k in ("checked", "verdicts", "ok")},
    )


def print_result(r: LoadResult) -> None:
    """Human-readable summary of a load run."""
    total_requests = sum(r.requests.values())
    print(f"images            {r.images} ({r.workers} actors, {r.shard_size} per shard)")
    print(f"upload            {r.upload_seconds:.1f} s (direct to moto, not timed below)")
    print(f"recompress        {r.run_seconds:.1f} s wall = {r.images_per_second:.1f} images/s "
          f"(startup {r.startup_seconds:.1f} s; steady {r.steady_images_per_second:.1f} images/s)")
    print(f"rows by status    {r.rows_by_status}  reasons {r.reasons or '-'}")
    print(f"S3 requests       {total_requests} through the proxy {r.requests}")
    print(f"faults injected   {sum(r.injected.values())} = retries observed {r.injected} "
          f"({100 * sum(r.injected.values()) / max(total_requests, 1):.2f}% of requests)")
    print(f"reconcile         {r.reconcile_seconds:.1f} s  {r.reconcile}")
    print(f"audit             {'clean' if r.audit_ok else 'VIOLATIONS'} in {r.audit_seconds:.1f} s "
          f"{r.violations if r.violations else ''}")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--slowdown", type=float, default=DEFAULT_RATES["slowdown"], help="fraction of 503s")
    parser.add_argument("--internal", type=float, default=DEFAULT_RATES["internal"], help="fraction of 500s")
    parser.add_argument("--reset", type=float, default=DEFAULT_RATES["reset"], help="fraction of resets")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    # moto accepts any credentials; botocore must never look for real ones.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "load-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "load-test-secret")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name, value in (("PREFECT_SERVER_ANALYTICS_ENABLED", "false"), ("RAY_USAGE_STATS_ENABLED", "0"),
                        ("DO_NOT_TRACK", "1"), ("PREFECT_LOGGING_LEVEL", "WARNING")):
        os.environ.setdefault(name, value)

    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        options = {"key": os.environ["AWS_ACCESS_KEY_ID"], "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
                   "client_kwargs": {"endpoint_url": endpoint}}
        bucket = f"load-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem(**options).mkdir(bucket)
        result = run_load(args.images, s3_endpoint=endpoint, storage_options=options, bucket_url=f"s3://{bucket}",
                          rates={"slowdown": args.slowdown, "internal": args.internal, "reset": args.reset},
                          workers=args.workers, shard_size=args.shard_size, size=args.size)
    finally:
        server.stop()
    if args.json:
        print(json.dumps({**asdict(result), "images_per_second": result.images_per_second,
                          "steady_images_per_second": result.steady_images_per_second}, indent=2, default=str))
    else:
        print_result(result)
    sys.exit(0 if result.audit_ok and result.reconcile.get("ok") else 1)


if __name__ == "__main__":
    main()
