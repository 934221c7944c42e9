"""Driver-side checks of --task-model against the job: targets, kinds, archive roots."""

from __future__ import annotations

from pathlib import Path

import pytest

from recodec.config import RunConfig
from recodec.errors import ConfigError
from recodec.target import parse_target
from recodec.task.model import prepare_task_model
from recodec.job import prepare_job
from tests.task.models import MeanClassifier, save_model


def test_task_bounds_parse_and_validate() -> None:
    target = parse_target("task_agreement>=0.99,psnr>=35,task_rel_l1<=0.1")
    assert [str(b) for b in target.task_bounds] == ["task_agreement>=0.99", "task_rel_l1<=0.1"]
    assert target.quality_bounds == target.bounds
    for bad, words in [("task_agreement<=0.9", "takes only >="), ("task_miou>=1.5", "lies in [0, 1]"),
                       ("task_rel_l1<=-1", "finite and >= 0")]:
        with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
            parse_target(bad)


def test_prepare_task_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs --task-model"):
        prepare_task_model(None, parse_target("task_agreement>=0.9"), [])
    assert prepare_task_model(None, parse_target("psnr>=30"), []) is None
    path = save_model(MeanClassifier(), tmp_path / "m" / "c.pt", kind="classification")
    with pytest.raises(ConfigError, match="a classification model gives only task_agreement"):
        prepare_task_model(str(path), parse_target("task_miou>=0.9"), [])
    assert prepare_task_model(str(path), parse_target("task_agreement>=0.9"), []).spec.kind == "classification"


def test_job_refuses_a_model_inside_src_and_keys_on_the_model(tmp_path: Path) -> None:
    src = tmp_path / "src"
    inside = save_model(MeanClassifier(), src / "model.pt", kind="classification")
    cfg = RunConfig(src=str(src), dst=str(tmp_path / "dst"), codec="jpeg", task_model=str(inside))
    with pytest.raises(ConfigError, match="never loaded from the archive"):
        prepare_job(cfg)
    a = save_model(MeanClassifier(0.5), tmp_path / "a.pt", kind="classification")
    b = save_model(MeanClassifier(0.6), tmp_path / "b.pt", kind="classification")
    keys = {prepare_job(RunConfig(src=str(src), dst=str(tmp_path / "dst"), codec="jpeg", task_model=m)).job_key
            for m in (str(a), str(b), None)}
    assert len(keys) == 3


def test_cli_takes_task_model_on_run_and_reconcile() -> None:
    from click.testing import CliRunner

    from recodec.cli import cli

    for command in ("run", "reconcile"):
        assert "--task-model" in CliRunner().invoke(cli, [command, "--help"]).output
    assert "FILES" in CliRunner().invoke(cli, ["train-task", "--help"]).output


@pytest.mark.usefixtures("prefect_harness")  # the session's Prefect server, not a fresh ephemeral one
def test_reconcile_cli_refuses_a_model_inside_dst(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from recodec.cli import cli

    model = save_model(MeanClassifier(), tmp_path / "dst" / "m.pt", kind="classification")
    result = CliRunner().invoke(cli, ["reconcile", str(tmp_path / "dst"), "--task-model", str(model)])
    assert result.exit_code == 2 and "never loaded from the archive" in result.output
