"""Codecs named by import path ("module:Class") must stay verifiable after the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from recodec.tasks.shard import ShardContext
from recodec.tasks.reconcile import check_row
from tests.reliability.helpers import commit, fault_codec, job_config, prepare_shards, rows_of, write_archive


def test_reconcile_resolves_a_codec_named_by_path(src: Path, dst: Path) -> None:
    write_archive(src, 1)
    spec, (shard,) = prepare_shards(job_config(src, dst, codec=fault_codec("FaultyJpegCodec")))
    ctx = ShardContext(spec)
    commit(ctx, ctx.process_shard(shard))
    (row,) = rows_of(dst)
    assert row["status"] == "ok"
    assert check_row(row) == ("ok", "")
