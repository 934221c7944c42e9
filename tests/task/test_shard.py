"""Task metrics on the per-image path, in-process (no Ray): fixed params, a target search, failing
models as rows, and reconcile's re-check (and its refusal of a model inside DST)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from recodec.config import ReconcileConfig, RunConfig
from recodec.errors import ConfigError
from recodec.job import prepare_job
from recodec.tasks.planning import iter_shards, plan_job
from recodec.tasks.reconcile import verify
from recodec.tasks.shard import ShardContext
from recodec.task.model import TaskModel, read_model
from recodec.tasks.reconcile import check_row
from tests.task.models import BlurThreshold, Gradient, HalfSize, MeanClassifier, Raises, save_model


def _src(tmp_path: Path, names: tuple[str, ...] = ("i0.png", "i1.png")) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    for name in names:
        ramp = np.linspace(0, 255, 80)[None, :, None] * np.ones((64, 1, 3))
        PILImage.fromarray(np.clip(ramp + rng.normal(0, 12, ramp.shape), 0, 255).astype(np.uint8)).save(
            src / name, format="PNG")
    return src


def _rows(tmp_path: Path, model: Path, target: str | None, names: tuple[str, ...] = ("i0.png", "i1.png"),
          **params: Any) -> list[dict[str, Any]]:
    src, dst = _src(tmp_path, names), tmp_path / "dst"
    job = prepare_job(RunConfig(src=str(src), dst=str(dst), codec="jpeg", params=params, container="raw",
                                target=target, allow_growth=True, task_model=str(model), run_id="r"))
    summary = plan_job(str(src), str(dst), job.job_key, extension=job.plan_extension, extensions=(".png",),
                       shard_size=10, shard_bytes=10**12, job_info={"config": {"src": str(src)}})
    ctx = ShardContext(job)
    return [ctx.process_image(0, item) for item in next(iter_shards(str(dst), job.job_key, summary.shards)).items]


def test_dense_model_target_search(tmp_path: Path) -> None:
    model = save_model(Gradient(), tmp_path / "m" / "grad.pt", kind="dense", tile=32, overlap=8)
    rows = _rows(tmp_path, model, "task_rel_l1<=0.05")
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["task_rel_l1"] <= 0.05 and r["task_agreement"] is None and r["attempts"] > 1
        assert len(r["task_model_sha256"]) == 64


def test_per_tile_classifier_with_fixed_params(tmp_path: Path) -> None:
    model = save_model(MeanClassifier(), tmp_path / "m" / "cls.pt", kind="classification", tile=16)
    rows = _rows(tmp_path, model, None, quality=90)
    for r in rows:
        assert r["status"] == "ok" and r["attempts"] == 1
        assert 0.0 <= r["task_agreement"] <= 1.0 and r["task_miou"] is None and r["task_rel_l1"] is None


def test_reconcile_refuses_a_model_inside_dst(tmp_path: Path) -> None:
    model = save_model(MeanClassifier(), tmp_path / "dst" / "cls.pt", kind="classification")
    with pytest.raises(ConfigError, match="never loaded from the archive"):
        verify(ReconcileConfig(str(tmp_path / "dst"), task_model=str(model)))


@pytest.mark.parametrize("module", [Raises(), HalfSize()], ids=["raises", "wrong_shape"])
def test_model_failures_are_rows_not_crashes(tmp_path: Path, module: Any) -> None:
    rows = _rows(tmp_path, save_model(module, tmp_path / "m" / "bad.pt"), None, quality=80)
    assert rows and all(r["status"] == "failed" and r["error"].startswith("task_model_error:") for r in rows)
    assert not any(r.get("dest_uri") for r in rows)


def test_reconcile_re_measures_with_the_model_it_is_given(tmp_path: Path) -> None:
    """A lenient model's bound holds on re-check; a stricter model re-run on source and output finds it broken."""
    lenient = save_model(BlurThreshold(low=0.0, high=1.0), tmp_path / "m" / "lenient.pt")
    rows = _rows(tmp_path, lenient, "task_agreement>=0.999", quality=80)
    assert rows and all(r["status"] == "ok" for r in rows)
    again = TaskModel.from_ref(read_model(str(lenient)))
    assert {check_row(r, task=again)[0] for r in rows} == {"ok"}
    strict = TaskModel.from_ref(read_model(str(save_model(BlurThreshold(low=0.45, high=0.5),
                                                          tmp_path / "m" / "strict.pt"))))
    verdicts = [check_row(r, task=strict) for r in rows]
    assert any(v == "target_not_met" and "re-measured" in d for v, d in verdicts), verdicts
    Path(rows[0]["source_uri"]).unlink()
    assert check_row(rows[0], task=again)[0] == "task_model_error"


def _url_like_rows(tmp_path: Path) -> tuple[list[dict[str, Any]], TaskModel]:
    lenient = save_model(BlurThreshold(low=0.0, high=1.0), tmp_path / "m" / "lenient.pt")
    rows = _rows(tmp_path, lenient, "task_agreement>=0.999", names=("a::b.png", "c?d.png", "e#f.png"), quality=80)
    assert [r["status"] for r in rows] == ["ok"] * 3, [r.get("error") for r in rows]
    return rows, TaskModel.from_ref(read_model(str(lenient)))


def test_task_recheck_reopens_sources_by_root_and_key_never_as_urls(tmp_path: Path) -> None:
    """Keys that look like URLs (chained ``::``, a query ``?``, a fragment ``#``) are still their objects."""
    rows, task = _url_like_rows(tmp_path)
    src, dst = str(tmp_path / "src"), str(tmp_path / "dst")
    for r in rows:
        assert check_row(r, dst=dst, task=task) == ("ok", "")  # the root from the row, the key joined to it
        assert check_row(r, dst=dst, task=task, src=src) == ("ok", "")
    assert check_row(rows[0], dst=dst, task=task, src=str(tmp_path / "elsewhere"))[0] == "task_model_error"


def test_reconcile_takes_each_jobs_recorded_src_unless_given(tmp_path: Path) -> None:
    from recodec.tasks.reconcile import job_sources

    rows, _ = _url_like_rows(tmp_path)
    key, dst = rows[0]["job_key"], str(tmp_path / "dst")
    assert job_sources(ReconcileConfig(dst), [key, "unrecorded"]) == {key: str(tmp_path / "src")}
    assert job_sources(ReconcileConfig(dst, src="s3://moved/src"), [key]) == {key: "s3://moved/src"}
