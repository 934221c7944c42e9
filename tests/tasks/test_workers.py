"""Tests of recodec.tasks.workers: GPU pinning options and the bounded driver loop."""

from __future__ import annotations

import pytest

from recodec.tasks import workers


def test_actor_options_cpu_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "cluster_cpus_gpus", lambda: (8, 0.0))
    n, opts = workers.actor_options(0, 1.0)
    assert n == 8 and "num_gpus" not in opts and opts["max_restarts"] == -1


def test_actor_options_gpu_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "cluster_cpus_gpus", lambda: (32, 4.0))
    n, opts = workers.actor_options(0, 0.5)
    assert n == 8 and opts["num_gpus"] == 0.5
    n, opts = workers.actor_options(3, 1.0)
    assert n == 3 and opts["num_gpus"] == 1.0


def test_pick_device_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert workers.pick_device() == "cpu"


class _Echo:
    def __init__(self) -> None:
        import threading

        self.active = 0
        self.lock = threading.Lock()

    def work(self, x: int) -> int:
        if x == 3:
            raise ValueError("bad item")
        return x * 10


@pytest.mark.usefixtures("ray_local")
def test_run_bounded_handles_results_errors_and_bounds_pending() -> None:
    import ray

    actors = workers.start_actors(_Echo, (), 2, 0)
    pulled: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(10):
            pulled.append(i)
            # at most 2 actors x (1 running + 1 queued) items are ever ahead of the results
            assert len(pulled) - len(results) - len(errors) <= 4
            yield i

    results: dict[int, int] = {}
    errors: dict[int, str] = {}
    workers.run_bounded(actors, items(), lambda a, i: a.work.remote(i),
                        lambda i, r: results.__setitem__(i, r), lambda i, e: errors.__setitem__(i, str(e)),
                        queue_per_worker=1)
    workers.stop_actors(actors)
    assert results == {i: i * 10 for i in range(10) if i != 3}
    assert list(errors) == [3] and "bad item" in errors[3]
    assert ray.is_initialized()


class _Taintable:
    """An actor body whose first instance is tainted after its first item (a stuck image thread)."""

    made = 0

    def __init__(self, *, in_process: bool = False) -> None:
        assert in_process
        type(self).made += 1
        self.generation = type(self).made
        self.tainted = False

    def work(self, x: int) -> tuple[int, int]:
        from recodec.errors import WorkerTainted

        if self.tainted:
            raise WorkerTainted("stuck")
        if x == 3:
            raise ValueError("bad item")
        self.tainted = self.generation == 1
        return x * 10, self.generation


def test_in_process_pool_replaces_a_tainted_body_and_reports_errors() -> None:
    _Taintable.made = 0
    pool = workers.Pool.local(_Taintable, ())
    results: dict[int, tuple[int, int]] = {}
    errors: list[int] = []
    pool.ready()
    pool.run("work", range(5), lambda i, r: results.__setitem__(i, r), lambda i, e: errors.append(i))
    # item 0 on the first body, which is then tainted: item 1 goes to a fresh body, as Ray restarts an actor
    assert results == {0: (0, 1), 1: (10, 2), 2: (20, 2), 4: (40, 2)} and errors == [3]
    pool.stop()
    assert pool.actors == []
