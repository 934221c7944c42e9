"""Error-bounded recompression through the pipeline: a relative bound, exact-bound codecs, reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recodec.config import ReconcileConfig, RunConfig
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.manifest import read_manifest

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


def test_relative_bound_picks_the_smallest_exact_codec(sample_archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "o"
    recompress(RunConfig(src=str(sample_archive / "landsat"), dst=str(dst), shard_size=2, executor="local",
                         codec="lerc,jpegls,residual", target="max_abs_error<=0.5%",
                         params={"trials": "2"}).validate())
    rows = {r["source_key"]: r for r in read_manifest(str(dst)).to_pylist()}
    assert len(rows) == 2
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        assert row["target"] == "max_abs_error<=0.5%" and row["max_error_relative"] == pytest.approx(0.005)
        assert 0 < row["max_error_bound"] and row["max_abs_error"] <= row["max_error_bound"]
        assert row["attempts"] == 3  # one encode per exact-bound codec
        search = json.loads(row["search"])
        assert search[row["codec"]] == "won" and set(search) == {"lerc", "jpegls", "residual"}
    sixteen = rows["l8_LC81390452014295_B5_uint16.tif"]
    assert sixteen["max_error_bound"] == pytest.approx(0.005 * 40705)  # this scene spans 0..40705
    assert reconcile(ReconcileConfig(str(dst), workers=1))["ok"]
