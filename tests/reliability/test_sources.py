"""Sources that change or vanish between planning and reading are pinned out, never half-trusted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from recodec.tasks.shard import ShardContext
from tests.reliability.faults import png_bytes
from tests.reliability.helpers import (
    assert_one_row_each,
    audit_report,
    commit,
    job_config,
    prepare_shards,
    reason,
    rows_of,
    violation_kinds,
    write_archive,
)


def _rewrite(path: Path, data: bytes) -> None:
    """Replace a file's bytes and move its mtime on, as another writer would."""
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_source_changed_or_removed_after_planning(src: Path, dst: Path) -> None:
    keys = write_archive(src, 3)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10))
    _rewrite(src / keys[1], png_bytes(99))  # replaced by another writer after the plan pinned it
    (src / keys[2]).unlink()

    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))

    rows = assert_one_row_each(rows_of(dst), keys)
    assert rows[keys[0]]["status"] == "ok"
    assert reason(rows[keys[1]]) == "source_changed"
    assert reason(rows[keys[2]]) == "source_missing"
    assert sorted(p.name for p in dst.rglob("*.jpg")) == ["img0000.jpg"]  # nothing from the changed bytes
    # Without SRC the archive is consistent; with SRC audit names exactly the two moved sources.
    assert audit_report(None, dst).ok
    report = audit_report(src, dst)
    assert violation_kinds(report) == {"source_modified": 2}
    assert {v["uri"] for v in report.violations} == {str(src / keys[1]), str(src / keys[2])}


def test_s3_source_overwritten_after_planning(s3_bucket: str, s3_options: dict[str, Any], tmp_path: Path) -> None:
    import s3fs

    from tests.conftest import upload_tree

    keys = write_archive(tmp_path / "local", 2)
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    upload_tree(tmp_path / "local", src, s3_options)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10, storage_options=s3_options))
    # Same size, other bytes: only the ETag pin can tell.
    original = (tmp_path / "local" / keys[1]).read_bytes()
    s3fs.S3FileSystem(**s3_options).pipe_file(f"{src}/{keys[1]}", original[:-20] + bytes(20))

    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))
    rows = assert_one_row_each(rows_of(dst, s3_options), keys)
    assert rows[keys[0]]["status"] == "ok" and reason(rows[keys[1]]) == "source_changed"


def test_source_overwritten_during_read_is_not_trusted(src: Path, dst: Path) -> None:
    keys = write_archive(src, 2)
    victim = src / keys[1]
    victim.write_bytes(png_bytes(1, stored=True))
    replacement = png_bytes(2, stored=True)
    assert len(replacement) == victim.stat().st_size  # same size: only the pin can tell
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10))
    ctx = ShardContext(spec)
    real_cat = ctx.src_fs.cat_file

    def cat_after_overwrite(path: str, *args: object, **kwargs: object) -> bytes:
        # The overwrite lands after read_source()'s info() check, before its read.
        if path == str(victim):
            _rewrite(victim, replacement)
        return real_cat(path, *args, **kwargs)

    ctx.src_fs.cat_file = cat_after_overwrite  # type: ignore[method-assign]
    commit(ctx, ctx.process_shard(shard))
    rows = assert_one_row_each(rows_of(dst), keys)
    assert reason(rows[keys[1]]) == "source_changed", rows[keys[1]]
