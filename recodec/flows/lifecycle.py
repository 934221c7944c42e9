"""The driver's life cycle around Prefect and Ray: no server left behind, a quick, quiet Ctrl-C.

* Without ``PREFECT_API_URL`` Prefect starts a temporary API server as a child process and stops
  it at exit, which a killed driver (SIGKILL, OOM) never reaches.  :func:`reap_prefect_server`
  pairs that server with a tiny *reaper* process that holds the read end of a pipe from the
  driver: when the driver dies, however it dies, the pipe closes and the reaper stops the server.
* On Ctrl-C, :func:`interruptible` silences the flow's logging (Prefect and Ray would print
  ~120 lines of tracebacks), lets the compress step's ``finally`` stop the actors and release
  this run's shard leases, stops Ray and the temporary server, and exits 130 with one line that
  says a re-run resumes.  A second Ctrl-C exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any, TypeVar

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


def reap_prefect_server() -> None:
    """Give every temporary Prefect server started from now on a reaper (idempotent)."""
    from prefect.server.api.server import SubprocessASGIServer

    original = SubprocessASGIServer._run_uvicorn_command
    if getattr(original, "_recodec_reaped", False):
        return

    def run_with_reaper(self: Any) -> subprocess.Popen[Any]:
        proc = original(self)
        reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(proc.pid)], stdin=subprocess.PIPE,
                                  start_new_session=True)
        self._recodec_reaper = reaper  # its stdin stays open for as long as this process lives
        return proc

    original_stop = SubprocessASGIServer.stop

    def stop_and_dismiss(self: Any) -> None:
        original_stop(self)  # waits for the server to exit
        reaper = getattr(self, "_recodec_reaper", None)
        if reaper is not None and reaper.stdin is not None:
            reaper.stdin.close()  # the reaper wakes, finds no server, and exits
            self._recodec_reaper = None

    run_with_reaper._recodec_reaped = True  # type: ignore[attr-defined]
    SubprocessASGIServer._run_uvicorn_command = run_with_reaper  # type: ignore[method-assign]
    SubprocessASGIServer.stop = stop_and_dismiss  # type: ignore[method-assign]


def _stop_everything() -> None:
    """Stop Ray and the temporary Prefect server now, instead of in slow atexit handlers."""
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    except Exception:
        pass
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
