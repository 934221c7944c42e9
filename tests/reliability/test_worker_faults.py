"""Workers that die or hang: the run still ends with exactly one row per source and a clean audit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from recodec.tasks.shard import ShardContext
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    audit_report,
    commit,
    fault_codec,
    job_config,
    prepare_shards,
    reason,
    rows_of,
    run_job,
    violation_kinds,
    write_archive,
)

ODD = 40  # the victim image is 40 px wide; the fault codecs trigger on that width


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_worker_killed_mid_shard_is_retried(src: Path, dst: Path, fault_dir: Path) -> None:
    # Image 3 is the second image of shard 1: the actor dies after image 2's output was written.
    keys = write_archive(src, 6, sizes={3: (ODD, 32)})
    config = job_config(src, dst, executor="ray", codec=fault_codec("KillingCodec"),
                        params={"fault_dir": str(fault_dir), "trigger_width": ODD, "kill_times": 1})
    summary = run_job(config)

    deaths = list(fault_dir.glob("death-*"))
    assert len(deaths) == 1  # the actor really died, once
    rows = assert_one_row_each(rows_of(dst), keys)
    assert {r["status"] for r in rows.values()} == {"ok"}, summary["first_errors"]
    assert summary["shards_failed"] == 0 and summary["images"] == 6
    # The retried shard ran on the restarted actor, a new process.
    assert not rows[keys[3]]["worker"].endswith("/" + deaths[0].name.rsplit("-", 1)[1])
    assert_audit_clean(src, dst)


def _run_poisoned(src: Path, dst: Path, fault_dir: Path) -> dict[str, Any]:
    """Run on one actor a job whose ODD-wide image kills every process that encodes it."""
    return run_job(job_config(src, dst, executor="ray", codec=fault_codec("KillingCodec"), workers=1, params={
        "fault_dir": str(fault_dir), "trigger_width": ODD, "kill_times": 99}))


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_worker_dying_past_retries_gives_worker_lost_rows(src: Path, dst: Path, fault_dir: Path) -> None:
    # Image 2 (first of the last shard) kills the actor on every attempt; nothing is queued behind it.
    keys = write_archive(src, 4, sizes={2: (ODD, 32)})
    summary = _run_poisoned(src, dst, fault_dir)

    rows = assert_one_row_each(rows_of(dst), keys)
    assert {k for k, r in rows.items() if reason(r) == "worker_lost"} == {keys[2], keys[3]}  # its shard
    assert rows[keys[0]]["status"] == rows[keys[1]]["status"] == "ok"
    assert summary["shards_failed"] == 1
    assert len(list(fault_dir.glob("death-*"))) == 4  # first attempt + max_task_retries=3
    assert_audit_clean(src, dst)


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_worker_lost_shard_leaves_no_orphans(src: Path, dst: Path, fault_dir: Path) -> None:
    # Image 3 (second of the last shard) kills every attempt, after image 2's output was written.
    keys = write_archive(src, 4, sizes={3: (ODD, 32)})
    _run_poisoned(src, dst, fault_dir)

    rows = assert_one_row_each(rows_of(dst), keys)
    assert reason(rows[keys[2]]) == reason(rows[keys[3]]) == "worker_lost"
    # The driver removed what the lost worker had published for image 2, and nothing else.
    assert not (dst / keys[2]).with_suffix(".jpg").exists()
    assert (dst / keys[0]).with_suffix(".jpg").exists()
    assert not list((dst / "_recodec" / "leases").rglob("*.json"))  # released
    assert_audit_clean(src, dst)


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_hanging_encoder_times_out_and_run_finishes(src: Path, dst: Path, fault_dir: Path) -> None:
    # Shard 0 = images 0, 1, 2 with image 1 stuck for 120 s; shard 1 runs on the same (restarted) actor.
    keys = write_archive(src, 5, sizes={1: (ODD, 32)})
    stuck = keys[1]
    config = job_config(src, dst, executor="ray", codec=fault_codec("HangingCodec"), workers=1, shard_size=3,
                        image_timeout_s=2,
                        params={"fault_dir": str(fault_dir), "trigger_width": ODD, "hang_s": 120.0})
    t0 = time.monotonic()
    summary = run_job(config)
    assert time.monotonic() - t0 < 90  # nobody waited for the stuck encoder

    rows = assert_one_row_each(rows_of(dst), keys)
    assert reason(rows[stuck]) == "timeout"
    assert all(rows[k]["status"] == "ok" for k in keys if k != stuck), summary["first_errors"]
    assert len(list(fault_dir.glob("hang-*"))) == 1
    # The actor was replaced after the stuck shard: shard 1 ran in another process.
    assert rows[keys[0]]["worker"].rsplit("/", 1)[1] != rows[keys[3]]["worker"].rsplit("/", 1)[1]
    assert_audit_clean(src, dst)


def test_timed_out_image_leaves_no_output(src: Path, dst: Path, fault_dir: Path) -> None:
    # In an actor the stuck thread lives on until the driver kills the actor after the shard, so an
    # encoder that is merely slow (3 s against a 2 s limit) finishes while the shard goes on.
    write_archive(src, 3, sizes={0: (ODD, 32)})
    config = job_config(src, dst, codec=fault_codec("HangingCodec"), shard_size=3, image_timeout_s=2,
                        params={"fault_dir": str(fault_dir), "trigger_width": ODD, "hang_s": 3.0})
    spec, (shard,) = prepare_shards(config)
    ctx = ShardContext(spec)
    result = ctx.process_shard(shard)
    commit(ctx, result)
    assert result.restart_worker and result.failed == 1
    for thread in threading.enumerate():  # let the abandoned thread finish, as it would in the actor
        if thread.name.startswith("image-"):
            thread.join(10)
    assert not violation_kinds(audit_report(src, dst)), audit_report(src, dst).violations


def test_output_write_outlasting_the_timeout_leaves_no_output(src: Path, dst: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.tasks import shard as compress

    keys = write_archive(src, 2)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10, image_timeout_s=2))
    real_write = compress.atomic_write
    landed = threading.Event()

    def slow_output_write(fs: object, path: str, data: bytes, **kwargs: object) -> None:
        if path.endswith("img0000.jpg"):  # the first output's upload is slow: 3 s against a 2 s limit
            time.sleep(3)
            try:
                real_write(fs, path, data, **kwargs)  # refused: its gate was revoked at the timeout
            finally:
                landed.set()
            return
        real_write(fs, path, data, **kwargs)

    monkeypatch.setattr(compress, "atomic_write", slow_output_write)
    ctx = ShardContext(spec)
    result = ctx.process_shard(shard)
    commit(ctx, result)
    assert reason(assert_one_row_each(rows_of(dst), keys)[keys[0]]) == "timeout"
    assert landed.wait(10)  # the late write finished; in an actor the thread lives on until the driver restarts it after the shard
    assert_audit_clean(src, dst)
