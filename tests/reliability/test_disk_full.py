"""Local disk full or failing while writing outputs: clear failed rows, nothing partial anywhere."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

import pytest

from recodec import storage
from recodec.tasks.shard import ShardContext
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    commit,
    job_config,
    prepare_shards,
    reason,
    rows_of,
    write_archive,
)


class _DiskFullFile:
    """A file whose write() gets half the bytes onto disk, then fails with ENOSPC (a full disk)."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh

    def __enter__(self) -> "_DiskFullFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()

    def write(self, data: bytes) -> int:
        self.fh.write(data[: len(data) // 2])
        self.fh.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)


def test_enospc_on_output_write(src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = write_archive(src, 3)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10))
    partial: list[str] = []

    def open_on_full_disk(path: str, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = builtins.open(path, mode, *args, **kwargs)
        if "img0001.jpg" in str(path):  # the disk fills up while the second output is written
            partial.append(str(path))
            return _DiskFullFile(fh)
        return fh

    # atomic_write's open() is looked up in recodec.storage's globals before builtins.
    monkeypatch.setattr(storage, "open", open_on_full_disk, raising=False)
    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))
    monkeypatch.undo()

    assert len(partial) == 1 and partial[0].endswith(".tmp")  # a temp sibling got half the bytes
    rows = assert_one_row_each(rows_of(dst), keys)
    victim = rows[keys[1]]
    assert reason(victim) == "storage_error" and "No space left on device" in victim["error"], victim
    assert rows[keys[0]]["status"] == rows[keys[2]]["status"] == "ok"
    files = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert not [f for f in files if "img0001" in f or f.endswith(".tmp")], files  # nothing partial left
    assert_audit_clean(src, dst)


class _FailingSyncfs:
    """libc stand-in whose syncfs() reports a writeback error, as a full thin volume or NFS does."""

    def syncfs(self, fd: int) -> int:
        return -1


def test_writeback_error_is_not_committed_as_ok(src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = write_archive(src, 2)
    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=10))
    monkeypatch.setattr(storage, "_LIBC", _FailingSyncfs())
    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))
    monkeypatch.undo()

    rows = assert_one_row_each(rows_of(dst), keys)  # outputs that may be lost: no row claims them
    assert all(reason(r) == "storage_error" and "durable" in r["error"] for r in rows.values()), rows
    assert not list(dst.rglob("*.jpg"))  # and they are gone, so no orphan either
    assert_audit_clean(src, dst)
