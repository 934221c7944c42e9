"""S3 throttling, server errors and resets under load: a few hundred images through the fault proxy.

The same function as ``benchmarks/load_s3.py``, which is run by hand on thousands of images.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.load_s3 import DEFAULT_RATES, run_load
from tests.reliability.faults import FaultRule

N_IMAGES = 200


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_transient_s3_faults_are_retried_under_load(s3_server: str, s3_options: dict[str, Any],
                                                     s3_bucket: str) -> None:
    # Cached filesystems, as in production: audit and reconcile open one client per object URL, and
    # without the cache each would be a new botocore client (about 0.3 s apiece here).
    options = {k: v for k, v in s3_options.items() if k != "skip_instance_cache"}
    first_of_each = [  # the very first write, read and info() fail for sure; then 2% / 1% / 0.5% at random
        FaultRule("slowdown", first=1, method="PUT"),
        FaultRule("internal", first=1, method="GET"),
        FaultRule("reset", first=1, method="HEAD"),
    ]
    result = run_load(N_IMAGES, s3_endpoint=s3_server, storage_options=options, bucket_url=s3_bucket,
                      rates=DEFAULT_RATES, extra_rules=first_of_each, workers=2, shard_size=50, seed=6)

    assert result.rows_by_status == {"ok": N_IMAGES}, result.reasons  # every fault was retried away
    assert result.audit_ok, result.violations  # checked straight against moto
    assert result.reconcile == {"checked": N_IMAGES, "verdicts": {"ok": N_IMAGES}, "ok": True}
    assert all(result.injected.get(kind, 0) >= 1 for kind in ("slowdown", "internal", "reset")), result.injected
    assert sum(result.injected.values()) >= 20, result.injected  # ~3.5 % of ~1,500 requests
    assert result.proxy_upstream_errors == 0
