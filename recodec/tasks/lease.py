"""Per-shard leases: at most one run of a job works on a shard at a time.

``DST/_recodec/leases/job=<job_key>/shard=<id>.json`` is created *conditionally* (``O_EXCL``
locally, ``If-None-Match: *`` on S3) by the worker that starts the shard, holds its run id, its
driver (host, pid, process start time) and an expiry, and is removed by the driver once the
shard's part is committed.  Another run finding a live lease skips the shard; the part itself
is committed only if absent (:meth:`recodec.manifest.PartSink.commit`), so even a run that
broke a lease in error cannot replace a committed part.

A lease is *stale*, and may be taken over, when it has expired (its holder refreshes it after
each image; expiry = 2 x ``image_timeout_s`` + 120 s after the last refresh), or when its driver
ran on this host and that process is gone (a killed driver's shards are free at once).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from recodec.layout import lease_path, leases_dir
from recodec.storage import atomic_write, create_exclusive

#: Seconds added to twice the image timeout to get a lease's lifetime after its last refresh.
LEASE_MARGIN_S = 120.0


def _start_time(pid: int) -> str:
    """A process's start time (Linux /proc), so a reused pid is not taken for the old process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def driver_identity() -> dict[str, Any]:
    """This process as a lease holder's driver: host, pid and start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _start_time(os.getpid())}


def _driver_gone(held: dict[str, Any]) -> bool:
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False  # another host: only the expiry can tell
    try:
        os.kill(held["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return bool(held.get("started")) and _start_time(held["pid"]) != held["started"]


def is_stale(held: dict[str, Any], now: float | None = None) -> bool:
    """Whether a lease's holder is gone (expired, or its local driver process died)."""
    expires = held.get("expires_at")
    if not isinstance(expires, (int, float)) or (now or time.time()) > expires:
        return True
    return _driver_gone(held)


class ShardLease:
    """The lease of one shard, as seen by one run."""

    def __init__(self, fs: Any, root: str, job_key: str, shard_id: int, run_id: str,
                 driver: dict[str, Any], ttl_s: float) -> None:
        self.fs, self.path = fs, lease_path(root, job_key, shard_id)
        self.run_id, self.driver, self.ttl_s = run_id, driver, ttl_s
        self.holder: dict[str, Any] = {}
        self._refreshed = 0.0

    def _body(self) -> bytes:
        self._refreshed = time.time()
        return json.dumps({"run_id": self.run_id, **self.driver,
                           "expires_at": self._refreshed + self.ttl_s}).encode()

    def read(self) -> dict[str, Any] | None:
        """The current holder, None when there is no lease ({} when it is unreadable)."""
        try:
            held = json.loads(self.fs.cat_file(self.path))
        except FileNotFoundError:
            return None
        except ValueError:
            return {}
        return held if isinstance(held, dict) else {}

    def acquire(self) -> bool:
        """Take the lease: create it, keep it (same run: a retried shard), or take over a stale one."""
        for _ in range(2):
            if create_exclusive(self.fs, self.path, self._body()):
                return True
            held = self.read()
            if held is None:
                continue  # released in between: try again
            self.holder = held
            if held.get("run_id") == self.run_id:
                self.refresh(force=True)
                return True
            if not is_stale(held):
                return False
            self._remove()  # stale: break it, then race for it like anyone else
        return False

    def refresh(self, force: bool = False) -> None:
        """Push the expiry forward (cheap: at most every quarter of the lifetime)."""
        if force or time.time() - self._refreshed > self.ttl_s / 4:
            atomic_write(self.fs, self.path, self._body(), durable=False)

    def release(self) -> None:
        """Remove the lease if this run holds it."""
        held = self.read()
        if held is not None and held.get("run_id") == self.run_id:
            self._remove()

    def _remove(self) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            pass


def shard_lease(fs: Any, root: str, job: Any, shard_id: int) -> ShardLease:
    """The lease of one shard of a :class:`~recodec.job.Job`, as held by its run."""
    return ShardLease(fs, root, job.job_key, shard_id, job.run_id, job.driver,
                      ttl_s=2 * job.config.image_timeout_s + LEASE_MARGIN_S)


def release_run_leases(fs: Any, root: str, job_key: str, run_id: str) -> int:
    """Remove every lease of ``job_key`` held by ``run_id`` (a driver stopping); returns how many."""
    base = leases_dir(root, job_key)
    try:
        paths = fs.ls(base, detail=False)
    except FileNotFoundError:
        return 0
    n = 0
    for path in paths:
        try:
            if json.loads(fs.cat_file(path)).get("run_id") == run_id:
                fs.rm_file(path)
                n += 1
        except (OSError, ValueError, AttributeError):
            continue
    return n
