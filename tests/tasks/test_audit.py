"""Unit tests of recodec.tasks.audit on a real (local) run's DST."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recodec.manifest import read_manifest
from recodec.tasks.audit import audit
from tests.tasks.test_shard import SAMPLES, _context


@pytest.fixture
def committed(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    shutil.copytree(SAMPLES / "photos", src)
    dst = tmp_path / "dst"
    ctx, shard = _context(src, dst, codec="jpeg", allow_growth=True)
    res = ctx.process_shard(shard)
    ctx.sink.commit(res.staging, res.final)
    return src, dst


def test_clean_run_audits_clean(committed: tuple[Path, Path]) -> None:
    src, dst = committed
    report = audit(str(src), str(dst))
    assert report.ok, report.violations
    assert report.info["rows"] == 3 and report.info["outputs"] == 3


def test_each_violation_is_reported(committed: tuple[Path, Path]) -> None:
    src, dst = committed
    outs = sorted(Path(r["dest_uri"]) for r in read_manifest(str(dst)).to_pylist())
    outs[0].unlink()
    outs[1].write_bytes(b"tampered")
    (dst / "stray.jpg").write_bytes(b"x")
    victim = next(src.glob("*.png"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    kinds = sorted(v["kind"] for v in audit(str(src), str(dst)).violations)
    assert kinds == ["orphan_output", "output_mismatch", "output_missing", "source_modified"]


def test_missing_row_for_planned_source(committed: tuple[Path, Path]) -> None:
    src, dst = committed
    for part in (dst / "_recodec" / "manifest").rglob("*.parquet"):
        part.unlink()
    kinds = {v["kind"] for v in audit(None, str(dst)).violations}
    assert "missing_row" in kinds and "orphan_output" in kinds
