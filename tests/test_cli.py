"""Tests of the recodec CLI (click's runner, real Ray and Prefect harness)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from recodec.cli import cli

COMMANDS = ["run", "reconcile", "query", "decode", "codecs", "audit", "train"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_codecs_lists_knobs_and_availability() -> None:
    result = CliRunner().invoke(cli, ["codecs", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    for name in ("jpeg", "webp", "avif", "jxl", "jpeg2000"):
        assert rows[name]["available"] is True
    assert rows["jpeg"]["knob"] == "quality" and rows["jxl"]["knob"] == "distance"
    assert rows["jxl"]["direction"] == "lower=better"
    text = CliRunner().invoke(cli, ["codecs"]).output
    assert "jpeg" in text and "dtypes uint8" in text


def test_bad_param_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", str(tmp_path), str(tmp_path / "o"), "--codec", "jpeg",
                                      "--param", "nope=1"])
    assert result.exit_code == 2 and "no parameter nope" in result.output
    result = CliRunner().invoke(cli, ["run", str(tmp_path), str(tmp_path / "o"), "--codec", "nosuch"])
    assert result.exit_code == 2 and "unknown codec" in result.output


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_run_query_decode_reconcile(sample_archive: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    src = sample_archive / "photos"
    dst = tmp_path / "out"
    result = runner.invoke(cli, ["run", str(src), str(dst), "--codec", "jpeg", "--quality", "85",
                                 "--param", "subsampling=4:4:4", "--shard-size", "2", "--workers", "1",
                                 "--allow-growth"])
    assert result.exit_code == 0, result.output
    assert "images: 3  ok 3  failed 0  skipped 0" in result.output and "ratio" in result.output

    q = runner.invoke(cli, ["query", str(dst), "SELECT source_key, codec_params, bpp FROM manifest ORDER BY 1",
                            "--format", "json"])
    assert q.exit_code == 0, q.output
    rows = json.loads(q.output)
    assert [r["source_key"] for r in rows] == sorted(p.name for p in src.iterdir())
    assert json.loads(rows[0]["codec_params"])["subsampling"] == "4:4:4"
    c = runner.invoke(cli, ["query", str(dst), "SELECT count(*) AS n FROM manifest", "--format", "csv"])
    assert list(csv.reader(io.StringIO(c.output))) == [["n"], ["3"]]
    assert runner.invoke(cli, ["query", str(dst), "SELEC nonsense"]).exit_code == 2

    out_file = next(dst.rglob("*.jpg"))
    d = runner.invoke(cli, ["decode", str(out_file), str(tmp_path / "view")])
    assert d.exit_code == 0, d.output
    assert (tmp_path / "view.png").exists()

    r = runner.invoke(cli, ["reconcile", str(dst)])
    assert r.exit_code == 0 and "ok=3" in r.output
    out_file.write_bytes(out_file.read_bytes()[:100])
    r = runner.invoke(cli, ["reconcile", str(dst)])
    assert r.exit_code == 1 and "size_mismatch" in r.output


def test_train_refuses_rnn_only_options_for_other_models(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["train", str(tmp_path), str(tmp_path / "out"), "--model", "hyperprior",
                                      "--local", "--ms-ssim-weight", "1"])
    assert result.exit_code != 0 and "only for --model rnn" in (result.output + str(result.exception))
    assert not (tmp_path / "out").exists()
