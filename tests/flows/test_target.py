"""Target-quality recompression through the pipeline: per-image search, auto codecs, no growth."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recodec.config import RunConfig
from recodec.config import ReconcileConfig
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.manifest import read_manifest

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


def _run(src: Path, dst: Path, **kw: Any) -> list[dict[str, Any]]:
    """Run in this process: the target search is the subject here, not the actors."""
    recompress(RunConfig(src=str(src), dst=str(dst), shard_size=2, executor="local", **kw).validate())
    return {r["source_key"]: r for r in read_manifest(str(dst)).to_pylist()}  # type: ignore[return-value]


def test_psnr_target_per_image_jpeg(sample_archive: Path, tmp_path: Path) -> None:
    rows = _run(sample_archive / "photos", tmp_path / "o", codec="jpeg", target="psnr>=36", container="raw")
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert ok, rows
    bound = 2 + math.ceil(math.log2(100))
    for r in ok:
        assert r["psnr"] >= 36 and r["target"] == "psnr>=36"
        assert 1 <= r["attempts"] <= bound
        q = json.loads(r["codec_params"])["quality"]
        assert 1 <= q <= 100
    qualities = {json.loads(r["codec_params"])["quality"] for r in ok}
    assert len(qualities) > 1 or len(ok) == 1  # chosen per image, not one global knob
    for r in rows.values():
        assert r["status"] == "ok" or r["error"].split(":")[0] in {"no_gain", "target_unreachable"}
    assert reconcile(ReconcileConfig(str(tmp_path / "o"), workers=1))["ok"]


def test_auto_skips_codecs_that_cannot_hold_the_image(sample_archive: Path, tmp_path: Path) -> None:
    rows = _run(sample_archive / "landsat", tmp_path / "o", codec="jpeg,jxl,lerc", target="psnr>=45",
                allow_growth=True)
    sixteen = rows["l8_LC81390452014295_B5_uint16.tif"]
    assert sixteen["status"] == "ok" and sixteen["codec"] in {"jxl", "lerc"}
    assert sixteen["psnr"] >= 45
    assert json.loads(sixteen["search"])["jpeg"].startswith("skipped: unsupported")
    assert json.loads(sixteen["search"])[sixteen["codec"]] == "won"
    eight = rows["l7_RGB.byte.tif"]
    assert eight["status"] == "ok" and eight["psnr"] >= 45


def test_unreachable_target_writes_nothing(sample_archive: Path, tmp_path: Path) -> None:
    rows = _run(sample_archive / "photos", tmp_path / "o", codec="jpeg", target="psnr>=80", container="raw")
    for r in rows.values():
        assert r["status"] == "failed" and r["error"].startswith("target_unreachable")
        assert r["dest_uri"] is None and r["attempts"] >= 1 and r["psnr"] is not None
    assert not [p for p in (tmp_path / "o").rglob("*") if p.is_file() and "_recodec" not in p.parts]


def test_no_gain_keeps_source(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(src / "flat.png", optimize=True)
    rows = _run(src, tmp_path / "o", codec="jpeg", target="psnr>=30", container="raw")
    r = rows["flat.png"]
    assert r["status"] == "skipped" and r["error"].startswith("no_gain") and r["dest_uri"] is None
    assert not (tmp_path / "o" / "flat.jpg").exists()


def test_multiband_uint16_max_abs_error(tmp_path: Path) -> None:
    import tifffile

    rng = np.random.default_rng(0)
    base = np.cumsum(rng.integers(-40, 41, (96, 80, 7)), axis=1) + 20000
    src = tmp_path / "src"
    src.mkdir()
    tifffile.imwrite(src / "stack.tif", base.astype(np.uint16), photometric="minisblack", planarconfig="contig")
    rows = _run(src, tmp_path / "o", codec="lerc", target="max_abs_error<=20")
    r = rows["stack.tif"]
    assert r["status"] == "ok" and r["bands"] == 7 and r["dtype"] == "uint16"
    assert r["max_abs_error"] <= 20
    assert reconcile(ReconcileConfig(str(tmp_path / "o"), workers=1))["ok"]


def test_copy_unchanged_keeps_a_complete_archive(sample_archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "o"
    rows = _run(sample_archive / "photos", dst, codec="jpeg", target="psnr>=80", container="raw",
                copy_unchanged=True)
    for key, r in rows.items():
        assert r["status"] == "failed" and r["container"] == "copy"
        assert (dst / key).read_bytes() == (sample_archive / "photos" / key).read_bytes()
    result = reconcile(ReconcileConfig(str(dst), workers=1))
    assert result["ok"] and result["verdicts"] == {"ok": len(rows)}
