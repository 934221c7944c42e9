"""Re-runs resume without redoing or re-recording anything; changed params are a new job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from recodec.manifest import connect
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    job_config,
    rows_of,
    run_job,
    write_archive,
)


def _state(dst: Path) -> dict[str, int]:
    """mtime (ns) of every output and committed manifest part under DST."""
    return {p.relative_to(dst).as_posix(): p.stat().st_mtime_ns for p in dst.rglob("*")
            if p.is_file() and (p.suffix == ".jpg" or "manifest" in p.parts)}


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_rerun_is_a_no_op_and_new_params_are_a_new_job(src: Path, dst: Path) -> None:
    keys = write_archive(src, 4)
    first = run_job(job_config(src, dst))
    before = _state(dst)
    assert len(before) == 4 + 2  # 4 outputs, 2 committed parts

    again = run_job(job_config(src, dst))
    assert again["job_key"] == first["job_key"] and again["run_id"] != first["run_id"]
    assert again["shards_resumed"] == again["shards"] == 2 and again["images_this_run"] == 0
    assert _state(dst) == before  # nothing rewritten
    assert_one_row_each(rows_of(dst), keys)  # nothing recorded twice

    changed = run_job(job_config(src, dst, quality=60))
    assert changed["job_key"] != first["job_key"] and changed["images_this_run"] == 4
    assert len(rows_of(dst)) == 8  # old rows kept for history
    assert_one_row_each(rows_of(dst, job_key=changed["job_key"]), keys)
    latest = connect(str(dst)).sql("SELECT source_key, job_key, dest_uri, dest_sha256 FROM latest").fetchall()
    assert sorted(r[0] for r in latest) == keys
    assert {r[1] for r in latest} == {changed["job_key"]}
    for _, _, uri, sha in latest:  # the outputs on disk are the new job's
        assert hashlib.sha256(Path(uri).read_bytes()).hexdigest() == sha
    assert_audit_clean(src, dst)
