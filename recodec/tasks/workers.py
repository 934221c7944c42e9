"""Ray plumbing shared by every step: start Ray, start actors, feed them with a bounded loop.

The actor bodies live beside the task they run (:class:`recodec.tasks.shard.ShardWorker`,
:class:`recodec.tasks.reconcile.ReconcileWorker`).  A :class:`Pool` holds a job's workers: Ray
actors, or, for a small job, one body of the same class in this process (no Ray to start).

The same code runs on an embedded local Ray (the default) and on a cluster
(``ray_address="ray://head:10001"`` or ``"auto"``).  Each actor loads its codec once;
it asks for ``num_gpus`` only when the cluster has GPUs, so a CPU-only cluster (and CI)
runs the same actors on the CPU.

Work in flight is bounded: each actor has one shard running and at most
``queue_per_worker`` queued, so the driver holds O(workers) shards and results
whatever the archive size.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from recodec.errors import WorkerTainted

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Ray retries an actor call this many times when the actor process dies (the shard is redone).
MAX_TASK_RETRIES = 3


def ensure_ray(address: str | None = None) -> None:
    """Start embedded Ray, or join the cluster at ``address``; no-op when already connected."""
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"ignore_reinit_error": True, "logging_level": logging.WARNING,
                              "log_to_driver": True}
    if address:
        kwargs["address"] = address
    else:
        kwargs["include_dashboard"] = False
    # Workers must import recodec: on a local cluster they share this interpreter's packages;
    # on a remote cluster recodec must be installed on the nodes (see docs/operations.md).
    ray.init(**kwargs)


def cluster_cpus_gpus() -> tuple[int, float]:
    """Total CPUs and GPUs of the connected Ray cluster."""
    import ray

    res = ray.cluster_resources()
    return int(res.get("CPU", 1)), float(res.get("GPU", 0.0))


def actor_options(workers: int, gpus_per_worker: float) -> tuple[int, dict[str, Any]]:
    """How many actors to start and their Ray options (GPU pinning only where GPUs exist)."""
    cpus, gpus = cluster_cpus_gpus()
    opts: dict[str, Any] = {"num_cpus": 1, "max_restarts": -1, "max_task_retries": MAX_TASK_RETRIES}
    n = workers or max(1, cpus)
    if gpus > 0 and gpus_per_worker > 0:
        opts["num_gpus"] = gpus_per_worker
        if not workers:
            n = max(1, int(gpus / gpus_per_worker))
    return n, opts


def pick_device() -> str:
    """"cuda" when this process was given a GPU (Ray sets CUDA_VISIBLE_DEVICES), else "cpu"."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "") in ("", "-1"):
        return "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


def limit_threads(cpus: float | None = None) -> None:
    """Give torch ``cpus`` threads: by default as many as CPUs Ray granted this actor.

    Oversubscribed intra-op threads make the metrics ~70x slower on a busy 2-core node
    (measured: 6.5 s vs 0.09 s for one 512x512 image).
    """
    if cpus is None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    try:
        import torch

        torch.set_num_threads(max(1, int(cpus)))
    except ImportError:
        pass


def worker_name() -> str:
    """A stable, unique name of the current Ray actor: node, actor id and pid."""
    import ray

    ctx = ray.get_runtime_context()
    actor = ctx.get_actor_id() or "driver"
    return f"{ctx.get_node_id()[:8]}/{actor[:12]}/{os.getpid()}"


def local_worker_name() -> str:
    """The worker name of an actor body running in this (driver) process: host and pid."""
    return f"local/{socket.gethostname()}/{os.getpid()}"


def start_actors(body: type, args: tuple[Any, ...], workers: int, gpus_per_worker: float) -> list[Any]:
    """Start ``workers`` actors of ``body`` (a plain class) with GPU pinning where possible."""
    import ray

    n, opts = actor_options(workers, gpus_per_worker)
    cls = ray.remote(body)
    return [cls.options(**opts).remote(*args) for _ in range(n)]


def run_bounded(
    actors: list[Any],
    items: Iterable[T],
    call: Callable[[Any, T], Any],
    on_result: Callable[[T, R], None],
    on_error: Callable[[T, BaseException], None],
    *,
    queue_per_worker: int = 1,
) -> None:
    """Feed ``items`` to ``actors`` with at most ``1 + queue_per_worker`` calls pending per actor.

    ``call(actor, item)`` submits and returns an ObjectRef.  Results are handled as they finish
    (unordered).  An item whose call fails after Ray's retries goes to ``on_error``; the loop
    goes on with the others.
    """
    import ray

    capacity = 1 + max(0, queue_per_worker)
    load = {i: 0 for i in range(len(actors))}
    pending: dict[Any, tuple[int, T]] = {}
    it: Iterator[T] = iter(items)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        while not exhausted:
            idx = min(load, key=load.__getitem__)
            if load[idx] >= capacity:
                return
            try:
                item = next(it)
            except StopIteration:
                exhausted = True
                return
            pending[call(actors[idx], item)] = (idx, item)
            load[idx] += 1

    fill()
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            idx, item = pending.pop(ref)
            load[idx] -= 1
            try:
                result = ray.get(ref)
            except WorkerTainted:
                # Restart (max_restarts=-1) and give the refused item to the fresh process.
                log.warning("restarting actor %d: it holds a stuck image thread", idx)
                ray.kill(actors[idx], no_restart=False)
                pending[call(actors[idx], item)] = (idx, item)
                load[idx] += 1
            except Exception as exc:  # actor died past its retries, or the call raised
                log.warning("work item failed on actor %d: %s", idx, exc)
                on_error(item, exc)
            else:
                on_result(item, result)
        fill()


def stop_actors(actors: list[Any]) -> None:
    """Kill actors without restarting them."""
    import ray

    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:
            pass


@dataclass
class Pool:
    """A job's workers: Ray actor handles, or one actor body in this process (``in_process``).

    Both run the same body class and methods; only the transport differs.  In this process
    the body is called directly, one item at a time, and a tainted body (a stuck image
    thread) is replaced by a fresh one, as Ray restarts a tainted actor.
    """

    body: type
    args: tuple[Any, ...]
    actors: list[Any] = field(default_factory=list)
    in_process: bool = False

    @classmethod
    def start(cls, body: type, args: tuple[Any, ...], workers: int, gpus_per_worker: float) -> "Pool":
        """Start Ray actors of ``body`` without waiting for them (Ray must be connected)."""
        return cls(body, args, start_actors(body, args, workers, gpus_per_worker))

    @classmethod
    def local(cls, body: type, args: tuple[Any, ...]) -> "Pool":
        """One ``body(*args, in_process=True)`` in this process, made now (imports, codec loads)."""
        return cls(body, args, [body(*args, in_process=True)], in_process=True)

    def ready(self, method: str = "name") -> None:
        """Wait until every worker is up (calls a cheap ``method`` on each)."""
        if not self.in_process:
            import ray

            ray.get([getattr(a, method).remote() for a in self.actors])

    def run(self, method: str, items: Iterable[T], on_result: Callable[[T, R], None],
            on_error: Callable[[T, BaseException], None], *, queue_per_worker: int = 1) -> None:
        """Call ``method(item)`` on the workers for every item; results and errors as :func:`run_bounded`."""
        if not self.in_process:
            run_bounded(self.actors, items, lambda a, i: getattr(a, method).remote(i), on_result, on_error,
                        queue_per_worker=queue_per_worker)
            return
        for item in items:
            try:
                result = self._call_local(method, item)
            except Exception as exc:  # the call raised: the same path as an actor call that failed
                log.warning("work item failed in this process: %s", exc)
                on_error(item, exc)
            else:
                on_result(item, result)

    def _call_local(self, method: str, item: Any) -> Any:
        try:
            return getattr(self.actors[0], method)(item)
        except WorkerTainted:
            log.warning("replacing the in-process worker: it holds a stuck image thread")
            self.actors[0] = self.body(*self.args, in_process=True)
            return getattr(self.actors[0], method)(item)

    def stop(self) -> None:
        """Stop the workers (Ray actors are killed without restart)."""
        if not self.in_process:
            stop_actors(self.actors)
        self.actors = []
