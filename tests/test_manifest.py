"""Tests of recodec.manifest: schema, atomic part commits, readers, DuckDB views."""

import datetime as dt
from pathlib import Path

import pytest

from recodec.layout import manifest_part_path, state_path
from recodec.manifest import MANIFEST_SCHEMA, PartSink, connect, read_manifest, to_table


def _row(key: str, status: str = "ok", when: int = 0) -> dict:
    return {"source_uri": f"/src/{key}", "source_key": key, "status": status, "job_key": "j", "shard_id": 0,
            "dest_uri": f"/dst/{key}.jxl", "bpp": 1.5,
            "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=when)}


def test_to_table_fills_missing_columns() -> None:
    t = to_table([_row("a")], MANIFEST_SCHEMA)
    assert t.schema == MANIFEST_SCHEMA and t.num_rows == 1 and t["psnr"][0].as_py() is None


def test_uncommitted_part_is_invisible(tmp_path: Path) -> None:
    sink = PartSink(str(tmp_path))
    staging = sink.start()
    sink.write(staging, to_table([_row("a")], MANIFEST_SCHEMA))
    assert read_manifest(str(tmp_path)).num_rows == 0  # written, not committed
    sink.commit(staging, manifest_part_path(sink.root, "j", 0))
    assert read_manifest(str(tmp_path)).num_rows == 1


def test_failed_write_cleans_up(tmp_path: Path) -> None:
    sink = PartSink(str(tmp_path))

    with pytest.raises(Exception):
        sink.write_part("not a table", manifest_part_path(sink.root, "j", 0))  # type: ignore[arg-type]
    assert not list((tmp_path / "_recodec").rglob("*.parquet"))


def test_duckdb_views_and_latest(tmp_path: Path) -> None:
    sink = PartSink(str(tmp_path))
    sink.write_part(to_table([_row("a", "failed", 0), _row("b")], MANIFEST_SCHEMA),
                    manifest_part_path(sink.root, "j", 0))
    sink.write_part(to_table([_row("a", "ok", 5)], MANIFEST_SCHEMA), manifest_part_path(sink.root, "k", 0))
    con = connect(str(tmp_path))
    assert con.sql("SELECT count(*) FROM manifest").fetchall()[0][0] == 3
    assert con.sql("SELECT count(*) FROM latest WHERE status = 'ok'").fetchall()[0][0] == 2
    assert con.sql("SELECT count(*) FROM reconcile").fetchall()[0][0] == 0


def test_state_paths() -> None:
    assert state_path("/d", "manifest") == "/d/_recodec/manifest"
    assert manifest_part_path("/d", "k", 3).endswith("job=k/shard=00000003.parquet")
