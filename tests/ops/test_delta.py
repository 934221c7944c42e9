"""Incremental re-runs: exactly the new, changed and (with --retry-failed) retryable sources are processed."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from recodec.errors import RETRYABLE_REASONS, is_retryable, reason_of
from recodec.manifest import connect
from tests.conftest import upload_tree
from tests.reliability.faults import png_bytes
from tests.reliability.helpers import assert_audit_clean, audit_report, job_config, rows_of, run_job, write_archive

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png_bytes(seed, 32, 32))).convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _processed(dst: str, run_id: str, options: dict[str, Any] | None = None) -> set[str]:
    return {r["source_key"] for r in rows_of(dst, options) if r["run_id"] == run_id}


def _fail_row(dst: Path, key: str, error: str) -> None:
    """Turn one committed row into a failed one, as a lost worker would have left it."""
    for part in (dst / "_recodec" / "manifest").rglob("*.parquet"):
        table = pq.read_table(part)
        hit = pc.equal(table["source_key"], key)
        if not pc.any(hit).as_py():
            continue
        rows = table.to_pylist()
        for r in rows:
            if r["source_key"] == key:
                r.update(status="failed", error=error, dest_uri=None, dest_key=None, dest_sha256=None)
        pq.write_table(type(table).from_pylist(rows, schema=table.schema), part)
        return
    raise AssertionError(key)


def test_retryable_reasons_are_one_set() -> None:
    assert reason_of("worker_lost: ActorDiedError: x") == "worker_lost"
    assert is_retryable("timeout: no result after 60 s") and not is_retryable("decode_error: truncated")
    assert not is_retryable(None) and "decode_error" not in RETRYABLE_REASONS


def test_rerun_processes_exactly_new_changed_and_retryable(src: Path, dst: Path) -> None:
    keys = write_archive(src, 6)
    first = run_job(job_config(src, dst))
    assert first["ok"] == 6 and first["delta"] is None

    (src / "f2").mkdir()
    (src / "f2" / "new.png").write_bytes(png_bytes(100, 32, 32))
    # A new source whose natural output name (img0000.jpg) an existing output already holds.
    (src / keys[0]).with_suffix(".jpg").write_bytes(_jpeg(101))
    (src / keys[1]).write_bytes(png_bytes(102, 32, 32))  # changed content, size and mtime
    os.remove(src / keys[2])  # disappeared: reported, nothing deleted
    _fail_row(dst, keys[3], "worker_lost: ActorDiedError: killed")
    _fail_row(dst, keys[4], "decode_error: truncated")

    second = run_job(job_config(src, dst))
    new_jpg = keys[0].replace(".png", ".jpg")
    assert second["job_key"] == first["job_key"]
    assert _processed(str(dst), second["run_id"]) == {"f2/new.png", new_jpg, keys[1]}
    d = second["delta"]
    assert (d["new"], d["changed"], d["retry"], d["disappeared"]) == (2, 1, 0, 1)
    assert d["examples"]["disappeared"] == [keys[2]]
    latest = dict(connect(str(dst)).sql("SELECT source_key, dest_uri FROM latest WHERE status = 'ok'").fetchall())
    # did not overwrite img0000.png's output: the job's naming policy gives it the next free base
    # (tasks/naming.py: "a.jpg" -> "a.jpg.jpg" is also claimed by a.png's base, so "a.jpg~1.jpg")
    assert latest[new_jpg].endswith("img0000.jpg~1.jpg")
    assert latest[keys[0]].endswith("img0000.jpg")
    assert (dst / keys[2]).with_suffix(".jpg").exists()  # the disappeared source's output is kept

    third = run_job(job_config(src, dst, retry_failed=True))
    assert _processed(str(dst), third["run_id"]) == {keys[3]}  # decode_error is not retried
    fourth = run_job(job_config(src, dst, retry_failed=True))
    assert fourth["images_this_run"] == 0 and fourth["delta"]["disappeared"] == 1

    con = connect(str(dst))
    status = dict(con.sql("SELECT source_key, status FROM latest").fetchall())
    assert status[keys[3]] == "ok" and status[keys[4]] == "failed" and status[keys[1]] == "ok"
    assert con.sql("SELECT count(*) - count(DISTINCT source_uri) FROM latest").fetchall()[0][0] == 0
    # The report's totals are the manifest's: newest row per source, saved bytes over ok rows.
    from recodec.report import build_report

    totals = build_report(str(dst))["totals"]
    want = con.sql("SELECT count(*), sum(source_bytes), sum(source_bytes - dest_bytes) FILTER (status = 'ok') "
                   "FROM latest").fetchall()[0]
    assert (totals["images"], totals["source_bytes"], totals["saved_bytes"]) == want
    kinds = {(v["kind"], v["uri"].rsplit("/", 1)[-1]) for v in audit_report(src, dst).violations}
    # Only what really happened: a source removed behind recodec's back (and the row we forged).
    assert ("source_modified", Path(keys[2]).name) in kinds
    assert {k for k, _ in kinds} <= {"source_modified", "output_missing", "orphan_output"}


def test_rerun_on_s3_picks_up_new_and_changed(tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    import s3fs

    local = tmp_path / "local"
    keys = write_archive(local, 4)
    upload_tree(local, f"{s3_bucket}/src", s3_options)
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    first = run_job(job_config(src, dst, storage_options=s3_options))
    assert first["ok"] == 4
    fs = s3fs.S3FileSystem(**s3_options)
    fs.pipe_file(f"{src}/{keys[0]}".removeprefix("s3://"), png_bytes(200, 32, 32))  # new ETag
    fs.pipe_file(f"{src}/g/added.png".removeprefix("s3://"), png_bytes(201, 32, 32))
    second = run_job(job_config(src, dst, storage_options=s3_options))
    assert _processed(dst, second["run_id"], s3_options) == {keys[0], "g/added.png"}
    assert second["delta"]["new"] == 1 and second["delta"]["changed"] == 1
    assert_audit_clean(src, dst, s3_options)
