"""S3 faults past the retries, injected by a proxy in front of moto.

Transient throttling, server errors and resets that the retries absorb are in test_load.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recodec.tasks.shard import ShardContext
from tests.conftest import upload_tree
from tests.reliability.faults import FaultProxy, FaultRule
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    commit,
    job_config,
    prepare_shards,
    reason,
    rows_of,
    run_job,
    with_endpoint,
    write_archive,
)

#: Few retries, so that a persistent fault gives up in seconds rather than minutes.  botocore's
#: ``max_attempts`` counts retries, so a request is tried ``RETRIES + 1`` times in all.
RETRIES = 2
ATTEMPTS = RETRIES + 1


def _short_retries() -> dict[str, Any]:
    # A fresh dict each time: botocore rewrites the retries dict it is given.
    return {"retries": {"max_attempts": RETRIES, "mode": "standard"}}


def _s3_archive(tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any], n: int) -> tuple[list[str], str, str]:
    """Upload ``n`` PNGs to ``s3_bucket/src``; return their keys, the SRC and the DST URL."""
    keys = write_archive(tmp_path / "local", n)
    upload_tree(tmp_path / "local", f"{s3_bucket}/src", s3_options)
    return keys, f"{s3_bucket}/src", f"{s3_bucket}/dst"


def test_persistent_fault_fails_only_its_image(tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any],
                                               fault_proxy: FaultProxy) -> None:
    keys, src, dst = _s3_archive(tmp_path, s3_bucket, s3_options, 3)
    rule = FaultRule("internal", first=10**9, method="GET", path_contains=keys[1])  # this object, forever
    fault_proxy.set_rules([rule])
    options = with_endpoint(s3_options, fault_proxy.url, **_short_retries())
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10, storage_options=options))
    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))  # returns: the fault is a row, not an exception

    assert rule.injected == ATTEMPTS  # retried, then given up
    rows = assert_one_row_each(rows_of(dst, s3_options), keys)
    assert reason(rows[keys[1]]) == "storage_error" and "internal error" in rows[keys[1]]["error"]
    assert rows[keys[0]]["status"] == rows[keys[2]]["status"] == "ok"
    assert_audit_clean(src, dst, s3_options)


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_failed_part_upload_keeps_outputs_accounted(tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any],
                                                    fault_proxy: FaultProxy) -> None:
    keys, src, dst = _s3_archive(tmp_path, s3_bucket, s3_options, 4)
    # The first shard's part upload fails on all its attempts; every later upload goes through.
    rule = FaultRule("internal", first=ATTEMPTS, method="PUT", path_contains="/_recodec/staging/")
    fault_proxy.set_rules([rule])
    options = with_endpoint(s3_options, fault_proxy.url, **_short_retries())
    run_job(job_config(src, dst, executor="ray", workers=1, storage_options=options))
    assert rule.injected == ATTEMPTS  # the actor really gave up on its part

    rows = assert_one_row_each(rows_of(dst, s3_options), keys)
    # The actor never died: its rows reach the manifest through the driver, outputs included.
    assert {r["status"] for r in rows.values()} == {"ok"}, {k: r["error"] for k, r in rows.items()}
    assert_audit_clean(src, dst, s3_options)
