"""The driver's life cycle: no Prefect server outlives a killed driver; Ctrl-C is quick and quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recodec.flows.lifecycle import INTERRUPTED

REPO = Path(__file__).resolve().parents[2]

#: A driver that starts a (stand-in) temporary server through Prefect's own start path, then dies.
_DRIVER = r"""
import os, signal, subprocess, sys
from prefect.server.api.server import SubprocessASGIServer
def fake_uvicorn(self):  # stands in for `python -m uvicorn ...` (its argv says uvicorn)
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "uvicorn"])
SubprocessASGIServer._run_uvicorn_command = fake_uvicorn
from recodec.flows.lifecycle import reap_prefect_server
reap_prefect_server()
server = SubprocessASGIServer.__new__(SubprocessASGIServer)
proc = server._run_uvicorn_command()
print(proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_driver_leaves_no_prefect_server() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _DRIVER], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    server = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60  # a condition with a generous deadline, not a timing assertion
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server), "the temporary server outlived its killed driver"


_INTERRUPTED_DRIVER = r"""
import os, signal, sys, threading, time, logging
from recodec.flows.lifecycle import interruptible
def work():
    threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        time.sleep(60)
    finally:
        logging.getLogger("prefect").error("Traceback (most recent call last): ... 120 lines")
interruptible(work, lambda line: print(line, file=sys.stderr, flush=True))
"""


def test_ctrl_c_is_one_line_with_the_resume_hint() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _INTERRUPTED_DRIVER], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 130
    assert out.stderr.splitlines() == [INTERRUPTED] and "again to resume" in INTERRUPTED


#: A driver that starts recodec run's own temporary API server, then dies.
_API_DRIVER = r"""
import os, signal
from recodec.flows.lifecycle import TemporaryAPI
api = TemporaryAPI.start()
print(api.proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_killed_driver_leaves_no_temporary_api_server(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PYTHONPATH=str(REPO), PREFECT_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _API_DRIVER], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    server = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server), "the temporary API server outlived its killed driver"


def test_a_configured_server_makes_the_temporary_one_stop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`recodec run` starts its server before Prefect's settings are read; a profile naming a server wins."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from recodec.flows.lifecycle import TemporaryAPI

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    api = TemporaryAPI.start()
    assert api is not None and api.proc is not None
    proc = api.proc
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}), api.serving():
        assert PREFECT_API_URL.value() == "http://127.0.0.1:9/api"
    assert api.proc is None and proc.poll() is not None and api not in TemporaryAPI.live
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert TemporaryAPI.start() is None
