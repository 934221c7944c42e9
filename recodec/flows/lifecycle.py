"""The driver's life cycle around Prefect and Ray: no server left behind, a quick, quiet Ctrl-C.

* Without ``PREFECT_API_URL`` Prefect starts a temporary API server as a child process and stops
  it at exit, which a killed driver (SIGKILL, OOM) never reaches.  :func:`reap_prefect_server`
  pairs that server with a tiny *reaper* process that holds the read end of a pipe from the
  driver: when the driver dies, however it dies, the pipe closes and the reaper stops the server.
* :class:`TemporaryAPI` is ``recodec run``'s own temporary server: the same server process
  Prefect would start (``uvicorn prefect.server.api.server:create_app``, ephemeral, no UI), but
  started first thing and waited for only when the flow needs it, so its ~3 s start overlaps the
  driver's imports, the listing and Ray (or the in-process worker's imports); and the driver never
  imports Prefect's server code (~1.5 s) itself.  It gets the same reaper.
* On Ctrl-C, :func:`interruptible` silences the flow's logging (Prefect and Ray would print
  ~120 lines of tracebacks), lets the compress step's ``finally`` stop the actors and release
  this run's shard leases, stops Ray and the temporary server, and exits 130 with one line that
  says a re-run resumes.  A second Ctrl-C exits at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from recodec.config import RunConfig

T = TypeVar("T")

#: Waits for EOF on stdin (the driver is gone), then stops the server if it still is the server.
_REAPER = r"""
import os, signal, sys, time
pid = int(sys.argv[1])
sys.stdin.buffer.read()
def ours():
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"uvicorn" in fh.read()
    except OSError:
        return os.name != "posix" or not os.path.isdir("/proc")
for sig in (signal.SIGTERM, signal.SIGKILL):
    if not ours():
        break
    try:
        os.kill(pid, sig)
    except OSError:
        break
    time.sleep(5)
"""

INTERRUPTED = ("interrupted: committed shards are kept and this run's leases released; "
               "run the same command again to resume")


def _reaper_for(pid: int) -> subprocess.Popen[Any]:
    """A reaper of the server ``pid``: its stdin stays open for as long as this process lives."""
    # Not on this process's stdout/stderr: a reaper outliving it must not hold a caller's pipe open.
    return subprocess.Popen([sys.executable, "-c", _REAPER, str(pid)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _dismiss(reaper: subprocess.Popen[Any] | None) -> None:
    if reaper is not None and reaper.stdin is not None:
        reaper.stdin.close()  # the reaper wakes, finds no server, and exits


def reap_prefect_server() -> None:
    """Give every temporary Prefect server started from now on a reaper (idempotent)."""
    from prefect.server.api.server import SubprocessASGIServer

    original = SubprocessASGIServer._run_uvicorn_command
    if getattr(original, "_recodec_reaped", False):
        return

    def run_with_reaper(self: Any) -> subprocess.Popen[Any]:
        proc = original(self)
        self._recodec_reaper = _reaper_for(proc.pid)
        return proc

    original_stop = SubprocessASGIServer.stop

    def stop_and_dismiss(self: Any) -> None:
        original_stop(self)  # waits for the server to exit
        _dismiss(getattr(self, "_recodec_reaper", None))
        self._recodec_reaper = None

    run_with_reaper._recodec_reaped = True  # type: ignore[attr-defined]
    SubprocessASGIServer._run_uvicorn_command = run_with_reaper  # type: ignore[method-assign]
    SubprocessASGIServer.stop = stop_and_dismiss  # type: ignore[method-assign]


class TemporaryAPI:
    """A temporary Prefect API server for this process: started at once, waited for when needed.

    Prefect's own temporary server (``SubprocessASGIServer``), with its command line and
    settings, but split into :meth:`start` (returns at once) and :meth:`serving` (waits, then
    points Prefect at it).  Stopped at exit, after Prefect has flushed its events and logs.
    """

    #: Servers of this process not stopped yet (Ctrl-C stops them at once).
    live: list["TemporaryAPI"] = []

    def __init__(self) -> None:
        self.proc: subprocess.Popen[Any] | None = None
        self.reaper: subprocess.Popen[Any] | None = None
        self.log: Any = None
        self.port = 0
        self.spawn()
        TemporaryAPI.live.append(self)
        # Registered before Prefect's own exit handlers, which flush events and logs to this
        # server: they run first.  The exit does not wait for the server to finish stopping.
        atexit.register(self.stop, wait=False)

    @classmethod
    def start(cls) -> "TemporaryAPI | None":
        """A server started now, unless ``PREFECT_API_URL`` is set in the environment (then None).

        Called before Prefect is imported, so Prefect's own settings (a profile may name a
        server) are checked later, by :meth:`serving`, which stops a server not needed.
        """
        if os.environ.get("PREFECT_API_URL"):
            return None
        return cls()

    def spawn(self) -> None:
        """Start the server process on a free loopback port (and its reaper)."""
        import importlib.util

        spec = importlib.util.find_spec("prefect")  # its location, without importing it
        assert spec is not None and spec.origin is not None, "Prefect is not installed"
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        if "prefect.settings" in sys.modules:  # settings made in this process (the server reads the rest itself)
            from prefect.settings import get_current_settings

            env.update(get_current_settings().to_environment_variables(exclude_unset=True))
        # Its output goes to a file, not to this process's stdout/stderr: a server still stopping
        # after this process ended must not hold a caller's pipe open; a failed start shows it.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", os.path.dirname(os.path.dirname(spec.origin)), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        _dismiss(self.reaper)
        self.reaper = _reaper_for(self.proc.pid)

    @property
    def api_url(self) -> str:
        """The server's API URL."""
        return f"http://127.0.0.1:{self.port}/api"

    def wait(self) -> None:
        """Block until the server answers its health check (a taken port: start again on another)."""
        import httpx
        from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

        # As Prefect counts it: the time slept between checks (a loaded machine slows the checks too).
        waited, limit = 0.0, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        with httpx.Client(timeout=2.0) as client:
            while waited < limit:
                assert self.proc is not None
                code = self.proc.poll()
                if code == 3:  # uvicorn: address already in use
                    self.spawn()
                elif code is not None:
                    self.log.seek(0)
                    tail = self.log.read()[-3000:].decode(errors="replace")
                    raise RuntimeError(f"the temporary Prefect server exited with code {code}:\n{tail}")
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
                waited += 0.05
        raise RuntimeError("timed out waiting for the temporary Prefect server")

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Wait for the server, and point Prefect at it for the duration.

        When Prefect's settings name a server after all (a profile), or forbid temporary ones,
        this server is stopped and Prefect left as configured.
        """
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings

        if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            self.stop()
            yield
            return
        self.wait()
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    def stop(self, *, wait: bool = True) -> None:
        """Stop the server; with ``wait``, until it is gone (then its reaper is dismissed).

        Without ``wait`` (at exit) the reaper stays: it sees this process end and makes sure
        the server is gone (SIGTERM, then SIGKILL).
        """
        if self.proc is not None:
            self.proc.terminate()
            if not wait:
                return
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        _dismiss(self.reaper)
        self.reaper = None
        if self in TemporaryAPI.live:
            TemporaryAPI.live.remove(self)


def run_checked(config: "RunConfig") -> dict[str, Any]:
    """What ``recodec run`` calls: check, start Prefect's API and the executor side by side, run the flow.

    Codec params, target, SRC and DST are checked *before* Prefect starts (a bad option or
    location is one line of error, not a flow run's tracebacks).  The temporary API's process
    starts before Prefect is imported here, so its start overlaps that import, the executor's
    start (Ray, or the in-process worker's imports) and the listing.
    """
    from recodec.job import prepare_job
    from recodec.locations import check_storage

    job = prepare_job(config)
    check_storage(config)
    api = TemporaryAPI.start()
    from recodec.flows import recompress as flow
    from recodec.tasks.jobs import start_executor

    config = start_executor(job)
    with api.serving() if api is not None else nullcontext():
        return flow.recompress(config)


def _stop_everything() -> None:
    """Stop Ray and the temporary Prefect server now, instead of in slow atexit handlers."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:
        pass
    for api in list(TemporaryAPI.live):
        api.stop()
    if "prefect.server.api.server" not in sys.modules:
        return  # Prefect never started its own server here
    try:
        from prefect.server.api.server import SubprocessASGIServer

        for server in list(SubprocessASGIServer._instances.values()):
            server.stop()
    except Exception:
        pass


def interruptible(fn: Callable[[], T], echo: Callable[[str], None]) -> T:
    """Run ``fn``; on Ctrl-C, clean up quietly, print :data:`INTERRUPTED` and exit 130."""

    def on_sigint(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl-C ends the process at once
        logging.disable(logging.CRITICAL)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        return fn()
    except KeyboardInterrupt:
        echo(INTERRUPTED)
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - late tracebacks of dying threads
        _stop_everything()
        os._exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
