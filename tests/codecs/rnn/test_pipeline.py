"""The rnn codec through the pipeline: run -> manifest (iteration count) -> reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recodec.config import ReconcileConfig, RunConfig
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.manifest import read_manifest

pytestmark = [pytest.mark.usefixtures("ray_local", "prefect_harness"), pytest.mark.slow]


def test_run_records_iterations_and_reconciles(tmp_path: Path, photo: np.ndarray) -> None:
    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(photo[:48, :64]).save(src / "a.png")
    Image.fromarray(photo[40:80, 50:110]).save(src / "b.png")
    dst = tmp_path / "dst"
    summary = recompress(RunConfig(src=str(src), dst=str(dst), codec="rnn", params={"iterations": 3},
                                   shard_size=1, executor="local", allow_growth=True).validate())
    assert summary["ok"] == 2, summary["first_errors"]
    from recodec.codecs.rnn import bitstream

    for row in read_manifest(str(dst)).to_pylist():
        assert json.loads(row["codec_params"])["iterations"] == 3
        data = Path(row["dest_uri"]).read_bytes()
        assert bitstream.read_header(data).iterations == 3  # what the stream holds
    result = reconcile(ReconcileConfig(str(dst), workers=1))  # decodes in a Ray actor
    assert result["ok"] and result["verdicts"] == {"ok": 2}
