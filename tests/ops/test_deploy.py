"""Deployments that run: a real Prefect server and process worker on 127.0.0.1 run the scheduled job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.reliability.helpers import write_archive

pytestmark = pytest.mark.slow
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, api: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp / "prefect-home"), PREFECT_API_URL=api, PYTHONPATH=str(REPO),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false", DO_NOT_TRACK="1",
               RAY_USAGE_STATS_ENABLED="0", PREFECT_LOGGING_LEVEL="INFO")
    return env


def _wait(url: str, seconds: float) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(url)


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path, api)
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(f"{api}/health", 180)
        yield api, env
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_deploy_and_trigger_a_scheduled_run(prefect_server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    import httpx

    api, env = prefect_server
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_archive(src, 3)
    out = subprocess.run(
        [sys.executable, "-m", "recodec", "deploy", str(src), str(dst), "--codec", "jpeg", "--param", "quality=80",
         "--name", "test", "--cron", "0 3 * * *", "--work-pool", "recodec-test"],
        env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    deployment = json.loads(out.stdout)
    got = httpx.get(f"{api}/deployments/{deployment['id']}", timeout=10).json()
    assert got["schedules"][0]["schedule"]["cron"] == "0 3 * * *"
    assert got["parameters"]["config"]["codec"] == "jpeg" and "storage_options" not in got["parameters"]["config"]

    # The infra/prefect.yaml route deploys too (from the repository root, as its comment says).
    pool = subprocess.run([*PREFECT, "work-pool", "create", "recodec-pool", "--type", "process"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert pool.returncode == 0, pool.stderr[-2000:]
    yaml_route = subprocess.run([*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml"],
                                env={**env, "RECODEC_REPO": str(REPO)}, cwd=REPO, capture_output=True, text=True,
                                timeout=180)
    assert yaml_route.returncode == 0, yaml_route.stdout[-2000:] + yaml_route.stderr[-2000:]
    names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()}
    assert names == {"test", "nightly"}

    worker_log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([*PREFECT, "worker", "start", "--pool", "recodec-test", "--type", "process"],
                              env=env, stdout=worker_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # A loaded two-worker test run can make the API answer with an error once (SQLite busy): retry.
        for _ in range(5):
            resp = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=30)
            run = resp.json()
            if "id" in run:
                break
            time.sleep(2)
        assert "id" in run, (resp.status_code, run)
        deadline = time.monotonic() + 420
        state = None
        while time.monotonic() < deadline:
            state = httpx.get(f"{api}/flow_runs/{run['id']}", timeout=10).json()["state"]["type"]
            if state in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
                break
            time.sleep(3)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker_log.close()
    assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-4000:]
    parts = list((dst / "_recodec" / "manifest").rglob("*.parquet"))
    assert parts and list((dst / "_recodec" / "reconcile").rglob("*.parquet"))
    assert (dst / "_recodec" / "report" / "report.html").exists()
