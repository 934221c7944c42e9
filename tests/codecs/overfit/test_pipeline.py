"""The overfit codec through the pipeline: run (8-bit RGB and 16-bit multiband) -> reconcile -> decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recodec.config import ReconcileConfig, RunConfig
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.manifest import read_manifest

pytestmark = [pytest.mark.usefixtures("ray_local", "prefect_harness"), pytest.mark.slow]


def test_run_reconcile_and_decode(tmp_path: Path, small_rgb: np.ndarray) -> None:
    import tifffile
    from click.testing import CliRunner
    from PIL import Image

    from recodec.cli import cli

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(small_rgb).save(src / "a.png")
    rng = np.random.default_rng(1)
    tifffile.imwrite(src / "b.tif", rng.integers(1000, 9000, (24, 30, 5)).astype(np.uint16),
                     photometric="minisblack", planarconfig="contig")
    dst = tmp_path / "dst"
    summary = recompress(RunConfig(src=str(src), dst=str(dst), codec="overfit", params={"iterations": 5},
                                   shard_size=1, executor="local", allow_growth=True).validate())
    assert summary["ok"] == 2, summary["first_errors"]
    rows = read_manifest(str(dst)).to_pylist()
    assert {r["codec"] for r in rows} == {"overfit"}
    result = reconcile(ReconcileConfig(str(dst), workers=1))  # decodes in a Ray actor
    assert result["ok"] and result["verdicts"] == {"ok": 2}
    out = next(Path(r["dest_uri"]) for r in rows if r["dest_uri"].endswith(".rcof") and "b" in Path(r["dest_uri"]).stem)
    res = CliRunner().invoke(cli, ["decode", str(out), str(tmp_path / "view")])
    assert res.exit_code == 0, res.output
    assert "30x24x5 uint16" in res.output
