"""Generative decoders through the pipeline, the manifest and reconcile (re-measure, not re-hash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from recodec.codecs import get_codec  # noqa: E402
from recodec.config import RunConfig  # noqa: E402
from recodec.digest import sha256_hex  # noqa: E402
from recodec.job import prepare_job  # noqa: E402
from recodec.manifest import MANIFEST_SCHEMA, RECONCILE_SCHEMA, VERDICTS, to_table  # noqa: E402
from recodec.pipeline import process_image  # noqa: E402
from recodec.tasks.reconcile import INEXACT_TOLERANCE, ReconcileWorker, check_row, decode_check  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "archive"


def _row(tmp_path: Path, codec: str, **params: Any) -> dict[str, Any]:
    """A real manifest row for a small sample photo, with its source and output written to tmp_path."""
    photo = next(p for p in sorted((SAMPLES / "photos").iterdir()) if p.suffix == ".png")
    from recodec.formats.source import read_image

    arr = read_image(photo.read_bytes()).array[:64, :96]
    source = tmp_path / "src.png"
    source.write_bytes(get_codec("png").encode(arr))
    job = prepare_job(RunConfig(src="s", dst="d", codec=codec, params=params))
    result = process_image(source.read_bytes(), job)
    out = tmp_path / f"out{result.extension}"
    out.write_bytes(result.encoded.payload)
    row = {**result.columns(), "status": "ok", "dest_uri": str(out), "source_uri": str(source),
           "source_key": source.name,
           "source_bytes": source.stat().st_size, "target": None, "bpp": result.bpp}
    return to_table([row], MANIFEST_SCHEMA).to_pylist()[0]


def test_generative_row_records_decoder_and_both_qualities(tmp_path: Path) -> None:
    row = _row(tmp_path, "jpeg-restore", quality=20)
    assert row["generative"] is True and row["decoder"].startswith("restore-jpeg steps=1 seed=0 weights=")
    assert row["decoder"].endswith("device=cpu")
    assert row["plain_psnr"] is not None and abs(row["plain_psnr"] - row["psnr"]) < 5
    plain = _row(tmp_path, "jpeg", quality=20)
    assert plain["generative"] is False and plain["decoder"] is None and plain["plain_psnr"] is None
    assert row["dest_sha256"] == plain["dest_sha256"]  # the archive holds the same plain JPEG
    assert abs(row["plain_psnr"] - plain["psnr"]) < 1e-9


def test_reconcile_remeasures_an_inexact_decode(tmp_path: Path) -> None:
    row = _row(tmp_path, "jpeg-restore", quality=25, steps=2, seed=5)
    assert json.loads(row["codec_params"])["steps"] == 2 and "steps=2 seed=5" in row["decoder"]
    assert decode_check(row) == "metrics"
    assert check_row(row) == ("ok", "")
    # The pixel hash is not what proves an inexact decode (it may change in low bits) ...
    assert check_row({**row, "decoded_sha256": "0" * 64}) == ("ok", "")
    # ... its metrics are, within the documented tolerance.
    tol = INEXACT_TOLERANCE["psnr"][0]
    assert check_row({**row, "psnr": row["psnr"] + tol / 2})[0] == "ok"
    verdict, detail = check_row({**row, "psnr": row["psnr"] + 1.0})
    assert verdict == "metrics_mismatch" and "psnr" in detail and "same device class" in detail
    Path(row["source_uri"]).unlink()
    verdict, detail = check_row(row)
    assert verdict == "metrics_mismatch" and "source unreadable" in detail


def test_an_exact_codec_is_still_proved_by_its_pixel_hash(tmp_path: Path) -> None:
    row = _row(tmp_path, "jpeg", quality=50)
    assert decode_check(row) == "decoded_sha256"
    assert check_row({**row, "decoded_sha256": "0" * 64})[0] == "pixels_mismatch"


def test_verdict_names_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recodec.tasks.reconcile.worker_name", lambda: "checker")  # no Ray here
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    rows = [_row(tmp_path / "a", "jpeg-restore", quality=30), _row(tmp_path / "b", "jpeg", quality=30)]
    for r in rows:
        r.update(run_id="r", job_key="k", shard_id=0, worker="w")
    verdicts = ReconcileWorker("c", {}).check(rows)
    assert [(v["verdict"], v["check"]) for v in verdicts] == [("ok", "metrics"), ("ok", "decoded_sha256")]
    to_table(verdicts, RECONCILE_SCHEMA)  # the schema holds the new column
    assert "metrics_mismatch" in VERDICTS and "check" in RECONCILE_SCHEMA.names
    assert {"generative", "decoder", "plain_psnr"} <= set(MANIFEST_SCHEMA.names)
    assert sha256_hex(Path(rows[0]["dest_uri"]).read_bytes()) == rows[0]["dest_sha256"]
