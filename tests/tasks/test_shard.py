"""Unit tests of recodec.tasks.shard: one shard processed in-process (no Ray)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recodec.manifest import read_manifest
from recodec.config import RunConfig
from recodec.job import prepare_job
from recodec.tasks.shard import ShardContext
from recodec.tasks.planning import PlanItem, iter_shards, plan_job

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "archive"


def _context(src: Path, dst: Path, codec: str = "jxl", params: dict[str, Any] | None = None,
             **kw: Any) -> tuple[ShardContext, Any]:
    job = prepare_job(RunConfig(src=str(src), dst=str(dst), codec=codec, params=params or {}, container="raw",
                                run_id="r", **kw))
    summary = plan_job(str(src), str(dst), job.job_key, extension=job.plan_extension,
                       extensions=(".png", ".jpg", ".tif"), shard_size=100, shard_bytes=10**12, job_info={})
    return ShardContext(job), next(iter_shards(str(dst), job.job_key, summary.shards))


def test_shard_rows_outputs_and_staged_part(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SAMPLES / "photos", src)
    ctx, shard = _context(src, tmp_path / "dst", params={"distance": 2.0, "effort": 3}, allow_growth=True)
    res = ctx.process_shard(shard)
    assert (res.ok, res.failed, res.skipped) == (3, 0, 0)
    assert read_manifest(str(tmp_path / "dst")).num_rows == 0  # staged, not committed
    ctx.sink.commit(res.staging, res.final)
    rows = {r["source_key"]: r for r in read_manifest(str(tmp_path / "dst")).to_pylist()}
    jpg = rows["photo_gemini4_389225main_sw_1965_1024.jpg"]
    # A JPEG source is re-coded losslessly by JPEG XL, and the manifest says so.
    assert json.loads(jpg["codec_params"]).get("transcoded_from") == "JPEG" and jpg["psnr"] == float("inf")
    png = rows["photo_chelsea.png"]
    assert png["dest_uri"].endswith("photo_chelsea.jxl") and np.isfinite(png["psnr"])
    assert png["bpp"] == pytest.approx(png["dest_bytes"] * 8 / (png["width"] * png["height"]))


def test_failures_are_rows_with_reasons(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.png").write_bytes((SAMPLES / "photos" / "photo_chelsea.png").read_bytes())
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    (src / "gone.png").write_bytes((src / "ok.png").read_bytes())
    (src / "changed.png").write_bytes((src / "ok.png").read_bytes())
    ctx, shard = _context(src, tmp_path / "dst", codec="jpeg", allow_growth=True)
    (src / "gone.png").unlink()
    (src / "changed.png").write_bytes(b"different now")
    rows = {r["source_key"]: r for r in (ctx.process_image(0, i) for i in shard.items)}
    assert rows["ok.png"]["status"] == "ok"
    assert rows["bad.png"]["error"].startswith("decode_error")
    assert rows["gone.png"]["error"].startswith("source_missing")
    assert rows["changed.png"]["error"].startswith("source_changed")
    assert all(r["created_at"] is not None for r in rows.values())


def test_no_gain_is_skipped_and_writes_nothing(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "black.png", optimize=True)
    ctx, shard = _context(src, tmp_path / "dst", codec="jpeg", params={"quality": 95})
    row = ctx.process_image(0, shard.items[0])
    assert row["status"] == "skipped" and row["error"].startswith("no_gain")
    assert row.get("dest_uri") is None and row["dest_sha256"] is None
    assert not list((tmp_path / "dst").glob("*.jpg"))


def test_timeout_fails_row_and_taints_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "slow.png", "c.png"):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(src / name)
    ctx, shard = _context(src, tmp_path / "dst", codec="jpeg", image_timeout_s=3, allow_growth=True)
    release, finished = threading.Event(), threading.Event()
    original = ctx.process_image

    def slow(shard_id: int, item: PlanItem, abandoned: threading.Event | None = None) -> dict[str, Any]:
        if item.key != "slow.png":
            return original(shard_id, item, abandoned)
        release.wait(60)
        try:
            return original(shard_id, item, abandoned)
        finally:
            finished.set()

    monkeypatch.setattr(ctx, "process_image", slow)
    try:
        res = ctx.process_shard(shard)
    finally:
        release.set()
        # Let the abandoned job finish: a thread still inside torch at exit aborts Python.
        finished.wait(60)
    assert (res.ok, res.failed) == (2, 1) and res.restart_worker
    assert [e.split(": ", 2)[1] for e in res.errors] == ["timeout"]
    assert not (tmp_path / "dst" / "slow.jpg").exists()  # the abandoned thread wrote nothing


def test_output_key_rules(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "x.png").write_bytes(b"\x89PNG")
    src, dst = str(tmp_path / "s"), str(tmp_path / "d")
    job = prepare_job(RunConfig(src=src, dst=dst, codec="jxl"))
    assert job.output_key("a/x.tif", "a/x.jxl", "geotiff", ".tif") == "a/x.tif"  # drop-in GeoTIFF replacement
    assert job.output_key("a/x.tif", "a/x.jxl", "raw", ".jxl") == "a/x.jxl"
    # The plan gave "a/x.tif" to another source: this GeoTIFF is written under its planned base.
    assert job.output_key("a/x.tif", "a/x.tif.jxl", "geotiff", ".tif", keep_key="") == "a/x.tif.jxl.tif"
    auto = prepare_job(RunConfig(src=src, dst=dst, codec="jxl,avif", target="psnr>=30"))
    assert auto.output_key("a/x.png", "a/x", "raw", ".avif") == "a/x.avif"


def test_band_pack_outputs_are_named_as_such(tmp_path: Path) -> None:
    import tifffile

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(src / "six.tif", rng.integers(0, 255, (40, 48, 6), dtype=np.uint8),
                     photometric="minisblack", planarconfig="contig")
    ctx, shard = _context(src, tmp_path / "dst", codec="jxl", params={"distance": 1.0, "effort": 3},
                          allow_growth=True)
    row = ctx.process_image(0, shard.items[0])
    assert row["status"] == "ok", row["error"]
    assert row["dest_uri"].endswith("six.jxl.rcbp")
