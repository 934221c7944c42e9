"""The driver dies between staging a shard's part and committing it: nothing half-visible, re-run heals."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from recodec.manifest import PartSink
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    audit_report,
    job_config,
    rows_of,
    run_job,
    violation_kinds,
    write_archive,
)

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


class DriverKilled(BaseException):
    """Stands for the driver process dying (OOM kill, node loss) at a chosen instant.

    A BaseException, like SystemExit: no ``except Exception`` on the way may handle it.
    """


def test_driver_killed_between_write_and_commit(src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = write_archive(src, 6)  # 3 shards of 2 on 2 actors
    config = job_config(src, dst, executor="ray")
    real_commit = PartSink.commit
    calls: list[tuple[str, str]] = []

    def commit_then_die(self: PartSink, staging: str, final: str) -> None:
        calls.append((staging, final))
        if len(calls) == 2:  # the first shard commits; the driver dies before committing the second
            raise DriverKilled("driver killed after the part was written, before its commit")
        real_commit(self, staging, final)

    monkeypatch.setattr(PartSink, "commit", commit_then_die)
    with pytest.raises(DriverKilled):
        run_job(config)
    monkeypatch.undo()

    (_, first_final), (lost_staging, lost_final) = calls
    # The staged part is complete on disk but invisible: readers only see the committed shard.
    assert pq.read_table(lost_staging).num_rows == 2 and not Path(lost_final).exists()
    visible = rows_of(dst)
    assert len(visible) == 2 and {r["shard_id"] for r in visible} == set(pq.read_table(first_final)["shard_id"].to_pylist())
    report = audit_report(src, dst)
    # Only "not done yet" findings: missing rows, and outputs whose rows were never committed.
    kinds = violation_kinds(report)
    assert set(kinds) <= {"missing_row", "orphan_output"} and kinds["missing_row"] == 4, report.violations
    assert report.info["uncommitted_staging_parts"] >= 1

    summary = run_job(config)
    assert summary["shards_resumed"] == 1 and summary["images_this_run"] == 4
    rows = assert_one_row_each(rows_of(dst), keys)
    assert {r["status"] for r in rows.values()} == {"ok"}
    report = assert_audit_clean(src, dst)
    assert report.info["uncommitted_staging_parts"] >= 1  # leftovers are reported, never read
