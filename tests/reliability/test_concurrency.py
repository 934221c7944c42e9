"""Two runs of the same job on the same DST at once: nothing corrupted, one row per source."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from recodec.manifest import MANIFEST_SCHEMA, to_table
from recodec.tasks.shard import ShardContext
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    commit,
    fault_codec,
    job_config,
    prepare_shards,
    rows_of,
    run_job,
    write_archive,
)


def rows_table(rows: list[dict[str, Any]]) -> Any:
    """Rows back into a manifest table."""
    return to_table(rows, MANIFEST_SCHEMA)


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_two_concurrent_runs_of_one_job(src: Path, dst: Path) -> None:
    keys = write_archive(src, 6)
    config = job_config(src, dst, executor="ray", workers=1)  # one actor each: both runs really overlap on 2 CPUs
    start = threading.Barrier(2)
    summaries: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def one_run() -> None:
        start.wait()
        try:
            summaries.append(run_job(config))
        except BaseException as exc:  # reported below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and len(summaries) == 2
    assert summaries[0]["job_key"] == summaries[1]["job_key"]
    assert summaries[0]["run_id"] != summaries[1]["run_id"]

    rows = assert_one_row_each(rows_of(dst), keys)  # a part per shard: the later commit replaced one
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert len(list((dst / "_recodec" / "manifest").rglob("*.parquet"))) == 3
    assert_audit_clean(src, dst)  # every output matches the size and SHA-256 of its committed row


def test_concurrent_runs_with_nondeterministic_encoder(src: Path, dst: Path) -> None:
    write_archive(src, 2)
    spec_a, (shard,) = prepare_shards(job_config(src, dst, codec=fault_codec("NondeterministicCodec"),
                                                 shard_size=10))
    spec_b = dataclasses.replace(spec_a, run_id=spec_a.run_id + "-b")  # a second driver, same job
    run_a, run_b = ShardContext(spec_a), ShardContext(spec_b)
    # Both drivers found the shard uncommitted.  A takes the shard's lease, encodes and writes; B
    # starts it a moment later, finds A's live lease and leaves the shard alone; B's driver has
    # nothing to commit and A's driver commits.
    result_a = run_a.process_shard(shard)
    result_b = run_b.process_shard(shard)
    assert result_b.leased_by == spec_a.run_id and result_b.staging is None
    assert not commit(run_b, result_b)
    assert commit(run_a, result_a)
    assert_audit_clean(src, dst)


def test_commit_if_absent_keeps_the_first_part(src: Path, dst: Path) -> None:
    # A run that broke a lease in error (or a clock gone wrong) still cannot replace a committed part.
    write_archive(src, 2)
    spec_a, (shard,) = prepare_shards(job_config(src, dst, codec=fault_codec("NondeterministicCodec"),
                                                 shard_size=10))
    run_a = ShardContext(spec_a)
    result_a = run_a.process_shard(shard)
    assert commit(run_a, result_a)
    first = (dst / "_recodec" / "manifest").rglob("*.parquet").__next__().read_bytes()
    staged = run_a.sink.start()
    run_a.sink.write(staged, rows_table(rows_of(dst)))
    assert not run_a.sink.commit(staged, result_a.final)
    assert next((dst / "_recodec" / "manifest").rglob("*.parquet")).read_bytes() == first
    assert not (dst / "_recodec" / "staging").exists() or not list((dst / "_recodec" / "staging").iterdir())


def test_stale_lease_of_a_dead_driver_is_taken_over(src: Path, dst: Path) -> None:
    import json
    import subprocess
    import sys

    write_archive(src, 2)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10))
    ctx = ShardContext(spec)
    lease = ctx.lease(shard.shard_id)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    # A lease left by a killed driver on this host (its process is gone), far from expiring.
    other = dict(spec.driver, pid=int(dead.stdout), started="1")
    lease.fs.makedirs(lease.path.rsplit("/", 1)[0], exist_ok=True)
    lease.fs.pipe_file(lease.path, json.dumps({"run_id": "dead-run", **other, "expires_at": 4e9}).encode())
    result = ctx.process_shard(shard)
    assert result.leased_by is None and commit(ctx, result)
    assert_audit_clean(src, dst)
