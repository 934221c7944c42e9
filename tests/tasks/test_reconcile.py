"""Unit tests of recodec.tasks.reconcile.check_row and rows_to_check."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from recodec.codecs import get_codec
from recodec.digest import pixel_sha256, sha256_hex
from recodec.manifest import MANIFEST_SCHEMA, to_table
from recodec.tasks.reconcile import check_row, rows_to_check


def _row(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    arr = np.random.default_rng(1).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    data = get_codec("png").encode(arr)
    out = tmp_path / "o.png"
    out.write_bytes(data)
    row = {"dest_uri": str(out), "dest_bytes": len(data), "dest_sha256": sha256_hex(data), "codec": "png", "status": "ok",
           "decoded_sha256": pixel_sha256(arr), "target": None, "psnr": float("inf"), "ssim": 1.0,
           "ms_ssim": 1.0, "max_abs_error": 0.0, "bpp": len(data) * 8 / (32 * 40)}
    row.update(kw)
    return row


def test_check_row_ok_and_each_failure(tmp_path: Path) -> None:
    assert check_row(_row(tmp_path)) == ("ok", "")
    assert check_row(_row(tmp_path, decoded_sha256="0" * 64))[0] == "pixels_mismatch"
    assert check_row(_row(tmp_path, target="psnr>=30,bpp<=0.01"))[0] == "target_not_met"
    assert check_row(_row(tmp_path, target="psnr>=30"))[0] == "ok"
    row = _row(tmp_path)
    Path(row["dest_uri"]).write_bytes(b"\x89PNG garbage" + b"\0" * (row["dest_bytes"] - 12))
    assert check_row(row)[0] == "sha256_mismatch"
    row["dest_sha256"] = sha256_hex(Path(row["dest_uri"]).read_bytes())
    assert check_row(row)[0] == "decode_failed"
    Path(row["dest_uri"]).unlink()
    assert check_row(row)[0] == "missing"


def test_rows_to_check_takes_newest_row_per_source_with_an_output() -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    rows = [
        {"source_uri": "/s/a", "dest_uri": "/d/a", "status": "ok", "created_at": t0, "dest_sha256": "old"},
        {"source_uri": "/s/a", "dest_uri": "/d/a", "status": "ok", "created_at": t0 + dt.timedelta(1),
         "dest_sha256": "new"},
        {"source_uri": "/s/c", "dest_uri": "/d/c", "status": "ok", "created_at": t0, "dest_sha256": "c"},
        {"source_uri": "/s/c", "dest_uri": None, "status": "failed", "created_at": t0 + dt.timedelta(1)},
        {"source_uri": "/s/b", "dest_uri": "/d/b", "status": "ok", "created_at": t0, "dest_sha256": "b"},
        # Another source claiming /d/b: both are checked (and reported as a collision)
        {"source_uri": "/s/b2", "dest_uri": "/d/b", "status": "ok", "created_at": t0, "dest_sha256": "b2"},
    ]
    picked = rows_to_check(to_table(rows, MANIFEST_SCHEMA)).to_pylist()
    assert sorted((r["dest_uri"], r["dest_sha256"]) for r in picked) == [
        ("/d/a", "new"), ("/d/b", "b"), ("/d/b", "b2")]


def test_target_bounding_sam_is_rechecked_with_the_recorded_sam(tmp_path: Path) -> None:
    # Regression: reconcile's re-check used a fixed list of metrics without sam, so every row
    # whose target bounds sam was judged target_not_met.
    assert check_row(_row(tmp_path, sam=0.5, target="sam<=1"))[0] == "ok"
    assert check_row(_row(tmp_path, sam=2.0, target="sam<=1"))[0] == "target_not_met"


def test_every_target_metric_is_a_manifest_column() -> None:
    from recodec.vocabulary import BOUND_OPS

    assert set(BOUND_OPS) <= set(MANIFEST_SCHEMA.names)
    assert {"psnr", "ssim", "ms_ssim", "max_abs_error", "sam", "bpp",
            "task_agreement", "task_miou", "task_rel_l1"} == set(BOUND_OPS)
