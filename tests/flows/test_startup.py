"""Start-up: a small job runs in this process (no Ray), with the same rows, parts and commits as on
Ray; the rule that decides it; ``recodec run`` in a fresh process with its own temporary Prefect API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from recodec.config import RunConfig
from recodec.errors import ConfigError
from recodec.manifest import read_manifest
from recodec.tasks.jobs import choose_executor
from tests.conftest import REPO, SAMPLES

_SAME_WORK = ["source_key", "status", "dest_key", "dest_bytes", "dest_sha256", "decoded_sha256", "psnr", "ssim"]


def _config(src: Path, dst: Path, **kw: Any) -> RunConfig:
    return RunConfig(src=str(src), dst=str(dst), codec="jpeg", params={"quality": 80}, shard_size=2,
                     allow_growth=True, **kw).validate()


def _rows(dst: Path) -> list[dict[str, Any]]:
    table = read_manifest(str(dst)).select(_SAME_WORK + ["worker", "job_key", "shard_id"])
    return sorted(table.to_pylist(), key=lambda r: r["source_key"])


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_in_process_run_matches_ray_and_resumes(sample_archive: Path, tmp_path: Path) -> None:
    from recodec.flows.recompress import recompress

    src = sample_archive / "photos"
    local = recompress(_config(src, tmp_path / "local", executor="local"))
    ray = recompress(_config(src, tmp_path / "ray", executor="ray", workers=2))
    assert local["ok"] == ray["ok"] == 3 and local["shards"] == ray["shards"] == 2
    assert (local["executor"], ray["executor"]) == ("local", "ray")
    on_local, on_ray = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert [{k: r[k] for k in _SAME_WORK + ["job_key", "shard_id"]} for r in on_local] == \
           [{k: r[k] for k in _SAME_WORK + ["job_key", "shard_id"]} for r in on_ray]
    assert {r["worker"].split("/")[0] for r in on_local} == {"local"}
    assert not {r["worker"].split("/")[0] for r in on_ray} & {"local"}
    again = recompress(_config(src, tmp_path / "local", executor="local"))
    assert again["shards_resumed"] == 2 and again["images_this_run"] == 0 and len(_rows(tmp_path / "local")) == 3


def test_small_jobs_run_in_process_unless_told_or_ray_is_there(sample_archive: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # as in a fresh `recodec run`
    src, dst = sample_archive, tmp_path / "out"  # 6 images
    assert choose_executor(_config(src, dst)) == "local"
    assert choose_executor(_config(src, dst, local_max_images=5)) == "ray"
    assert choose_executor(_config(src, dst, local_max_images=0)) == "ray"
    assert choose_executor(_config(src, dst, ray_address="ray://head:10001")) == "ray"
    assert choose_executor(_config(src, dst, executor="ray")) == "ray"
    monkeypatch.setattr("recodec.tasks.jobs.LOCAL_MAX_BYTES", 1000)  # the sources are bigger
    assert choose_executor(_config(src, dst)) == "ray"
    assert choose_executor(_config(src, dst, executor="local")) == "local"


@pytest.mark.usefixtures("ray_local")
def test_ray_already_running_here_is_used() -> None:
    assert choose_executor(_config(SAMPLES, Path("/nonexistent/out"))) == "ray"  # nothing listed


def test_local_executor_cannot_join_a_cluster(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="executor local"):
        _config(tmp_path, tmp_path / "o", executor="local", ray_address="auto")
    with pytest.raises(ConfigError, match="executor must be"):
        _config(tmp_path, tmp_path / "o", executor="dask")


def test_recodec_run_in_a_fresh_process(sample_archive: Path, tmp_path: Path) -> None:
    """The start-up path itself: no harness, no Ray; its own temporary Prefect API; exit codes kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path / "prefect"), OMP_NUM_THREADS="1")
    run = [sys.executable, "-m", "recodec", "run", str(sample_archive / "photos"), str(tmp_path / "out"),
           "--codec", "jpeg", "--allow-growth", "--json"]
    out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout)
    assert summary["ok"] == 3 and 0 < summary["startup_seconds"] and summary["work_seconds"] >= 0
    assert summary["executor"] == "local" and summary["shards"] == 1  # one worker here: one shard
    assert {r["worker"].split("/")[0] for r in _rows(tmp_path / "out")} == {"local"}
    (sample_archive / "photos" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    out = subprocess.run(run[:-1] + ["--retry-failed"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "ok 3  failed 1" in out.stdout, out.stdout + out.stderr[-3000:]
