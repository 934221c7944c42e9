"""Job-level steps of a recompression run: plan, process shards on Ray, summarise.

Each step is a plain function taking the :class:`~recodec.job.Job` made once by
:func:`recodec.job.prepare_job`; :mod:`recodec.flows.recompress` wraps them as Prefect tasks.
The shards go to Ray actors, or, for a small job (:func:`choose_executor`), to the same
:class:`~recodec.tasks.shard.ShardWorker` in this process: same work, rows, parts and commits.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from recodec.config import DEFAULT_SHARD_SIZE, RunConfig
from recodec.job import Job
from recodec.layout import manifest_job_dir, manifest_part_path
from recodec.manifest import MANIFEST_SCHEMA, PartSink, to_table
from recodec.storage import scrub, url_to_fs
from recodec.tasks.lease import release_run_leases, shard_lease
from recodec.tasks.naming import job_naming
from recodec.tasks.planning import PlanSummary, Shard, iter_listing, iter_shards, plan_job
from recodec.tasks.shard import ShardResult, ShardWorker, lost_shard_rows
from recodec.tasks.workers import Pool, ensure_ray

Progress = Callable[[str], None]
_IMPORTED_AT = time.time()
#: "auto" runs a job in this process only when its sources total at most this many bytes.
LOCAL_MAX_BYTES = 64 * 2**20


def plan(job: Job) -> PlanSummary:
    """List SRC and persist the shard plan (or reuse the persisted one)."""
    config = job.config
    return plan_job(
        config.src, config.dst, job.job_key, extension=job_naming(job),
        extensions=tuple(config.extensions), shard_size=config.shard_size or DEFAULT_SHARD_SIZE,
        shard_bytes=config.shard_bytes,
        job_info={"job_key": job.job_key, "codec": job.codec, "params": job.params,
                  "config": config.public_dict(),
                  "task_model_sha256": job.task_model.sha256 if job.task_model else None},
        storage_options=config.storage_options,
        # An explicit shard size is used as is; the default one is spread over every worker
        # (one worker in this process: one shard).
        spread=1 if config.shard_size or config.executor == "local" else planned_workers(config.workers,
                                                                                          config.ray_address),
    )


def planned_workers(workers: int, ray_address: str | None) -> int:
    """How many actors a small job should be spread over: the configured count, else this
    machine's CPUs for the embedded Ray (a remote cluster's size is unknown before Ray starts)."""
    if workers:
        return workers
    return 1 if ray_address else max(1, os.cpu_count() or 1)


def delta(job: Job, summary: PlanSummary) -> tuple[PlanSummary, dict[str, Any] | None]:
    """On a re-run (the plan was reused), append the new, changed and retryable sources to the plan."""
    if not summary.reused:
        return summary, None
    from recodec.tasks.delta import plan_delta

    config = job.config
    summary, report = plan_delta(
        config.src, config.dst, summary, run_id=job.run_id, extension=job_naming(job),
        extensions=tuple(config.extensions), shard_size=config.shard_size or DEFAULT_SHARD_SIZE,
        shard_bytes=config.shard_bytes,
        retry_failed=config.retry_failed, storage_options=config.storage_options)
    return summary, report.to_dict()


@dataclass
class RunStats:
    """Counts of one invocation (resumed shards are counted, not redone)."""

    shards_total: int = 0
    shards_done: int = 0
    shards_resumed: int = 0
    shards_failed: int = 0
    #: Shards whose part could not be written even by the driver: a re-run completes them.
    shards_uncommitted: int = 0
    #: Shards another live run of the job held (its lease): that run commits them.
    shards_leased: int = 0
    images_done: int = 0
    startup_seconds: float = 0.0
    work_seconds: float = 0.0
    #: Where the shards ran: "ray" or "local" (this process).
    executor: str = ""
    errors: list[str] = field(default_factory=list)
    #: Failure reasons with counts and examples, images/s (from :class:`recodec.progress.RunProgress`).
    live: dict[str, Any] = field(default_factory=dict)


class _ShardLoop:
    """The driver's side of :func:`process_shards`: what to submit, and what to do with each result."""

    def __init__(self, job: Job, summary: PlanSummary, progress: Progress | None) -> None:
        from recodec.progress import RunProgress

        self.job, self.summary = job, summary
        self.live = RunProgress(summary.images, sink=progress)
        self.t0 = time.perf_counter()
        self.stats = RunStats(shards_total=summary.shards)
        self.sink = PartSink(job.dst, job.storage_options)
        self.dst_fs, self.dst_root = url_to_fs(job.dst, job.storage_options)
        dst_fs = self.dst_fs
        self.committed = {p.rsplit("/", 1)[-1] for p in _list(dst_fs, manifest_job_dir(self.dst_root, job.job_key))}

    def final(self, shard: Shard) -> str:
        """Committed path of a shard's manifest part."""
        return manifest_part_path(self.dst_root, self.job.job_key, shard.shard_id)

    def todo(self) -> Iterator[Shard]:
        """The persisted shards without a committed part (the others are counted as resumed)."""
        for shard in iter_shards(self.job.dst, self.job.job_key, self.summary.shards, self.job.storage_options):
            if self.final(shard).rsplit("/", 1)[-1] in self.committed:
                self.stats.shards_resumed += 1
                self.live.resumed(len(shard.items))
                continue
            yield shard

    def release(self, shard: Shard) -> None:
        """Release this run's lease on a shard (after its part is committed, or not)."""
        shard_lease(self.dst_fs, self.dst_root, self.job, shard.shard_id).release()

    def on_result(self, shard: Shard, res: ShardResult) -> None:
        """Commit a shard's staged part if absent (or write the rows the worker could not stage)."""
        if res.leased_by is not None or res.already_committed:
            if res.leased_by is not None:
                self.stats.shards_leased += 1
            else:
                self.stats.shards_resumed += 1
                self.live.resumed(len(shard.items))
            return
        try:
            if res.staging is None:  # the worker could not stage it: write it from here
                won = self.sink.write_part(to_table(res.rows or [], MANIFEST_SCHEMA), res.final)
            else:
                won = self.sink.commit(res.staging, res.final)
            if not won:  # commit-if-absent: another run's part was there first and stays
                self.stats.errors.append(f"shard {shard.shard_id}: another run committed it first; kept that part")
            self.release(shard)
        except Exception as exc:
            # Left uncommitted on purpose: its outputs are rewritten and the part committed
            # by the next run of this job; audit reports the gap meanwhile.
            self.release(shard)
            self.stats.shards_uncommitted += 1
            self.stats.errors.append(scrub(f"shard {shard.shard_id}: manifest part not committed, re-run to "
                                           f"complete: {type(exc).__name__}: {exc}", self.job.storage_options))
            self.live.shard(failed=res.ok + res.failed + res.skipped,
                            errors=[f"shard {shard.shard_id}: uncommitted: {type(exc).__name__}"])
            return
        self.stats.shards_done += 1
        self.stats.images_done += res.ok + res.failed + res.skipped
        self.stats.errors.extend(res.errors[:5])
        self.live.shard(ok=res.ok, failed=res.failed, skipped=res.skipped,
                        saved_bytes=res.source_bytes - res.dest_bytes, errors=res.errors)

    def on_error(self, shard: Shard, exc: BaseException) -> None:
        """A shard whose worker died past its retries: commit failed rows for all its images."""
        rows = lost_shard_rows(self.job, shard, exc)
        self.sink.write_part(to_table(rows, MANIFEST_SCHEMA), self.final(shard))
        # The lost worker may have published outputs of this shard before it died: no row owns them.
        remove_unreferenced_outputs(self.job, shard)
        self.release(shard)
        self.stats.shards_failed += 1
        self.stats.images_done += len(rows)
        self.stats.errors.append(f"shard {shard.shard_id}: {rows[0]['error']}")
        self.live.shard(failed=len(rows), errors=[f"{r['source_key']}: {r['error']}" for r in rows])


def choose_executor(config: RunConfig) -> str:
    """"ray" or "local" for this job: ``config.executor``, or for "auto" the small-job rule.

    A small job (at most ``local_max_images`` sources, at most :data:`LOCAL_MAX_BYTES`) runs in
    this process when no Ray cluster is given and Ray is not running here yet: starting Ray, its
    actors and stopping them costs several seconds, more than such a job's work on one worker.
    Only the first ``local_max_images + 1`` sources are listed to decide.
    """
    if config.executor != "auto":
        return config.executor
    ray = sys.modules.get("ray")
    if config.ray_address or config.local_max_images == 0 or (ray is not None and ray.is_initialized()):
        return "ray"
    listing = iter_listing(config.src, config.dst, tuple(config.extensions), config.storage_options)
    head = list(itertools.islice(listing, config.local_max_images + 1))
    small = len(head) <= config.local_max_images and sum(o.size for o in head) <= LOCAL_MAX_BYTES
    return "local" if small else "ray"


def start_executor(job: Job) -> RunConfig:
    """Decide the executor and start what it needs: Ray, or the in-process worker's imports.

    Called while Prefect's API starts in its own process, so either overlaps it.  Returns the
    job's config with the executor decided, so the flow does not list SRC again to decide.
    """
    import dataclasses

    executor = choose_executor(job.config)
    if executor == "ray":
        ensure_ray(job.config.ray_address)
    else:
        import torch  # noqa: F401  (the metrics' library: most of a worker's import time)

        from recodec.codecs import get_codec

        for name in job.params:
            get_codec(name)  # its module and library; loaded by the worker itself
    return dataclasses.replace(job.config, executor=executor)


def start_pool(job: Job) -> Pool:
    """Start the job's workers without waiting for Ray's: actors, or one worker in this process.

    Called before planning, so each actor's start (a process, its imports, its codecs) overlaps
    the listing of SRC instead of following it.
    """
    if choose_executor(job.config) == "local":
        return Pool.local(ShardWorker, (job,))
    ensure_ray(job.config.ray_address)
    return Pool.start(ShardWorker, (job,), job.config.workers, job.config.gpus_per_worker)


def process_shards(job: Job, summary: PlanSummary, pool: Pool | None = None,
                   progress: Progress | None = None) -> RunStats:
    """Process every uncommitted shard on the job's workers (started here if not given), commit parts.

    The workers are stopped at the end.  ``startup_seconds`` runs from this process's start to
    the moment every worker is ready (imports, Prefect, Ray, listing, planning, codec loads).
    """
    loop = _ShardLoop(job, summary, progress)
    pool = pool if pool is not None else start_pool(job)
    try:
        pool.ready()  # codec loaded everywhere before timing work
        loop.stats.startup_seconds = seconds_since_process_start()
        loop.stats.executor = "local" if pool.in_process else "ray"
        t1 = time.perf_counter()
        pool.run("run", loop.todo(), loop.on_result, loop.on_error, queue_per_worker=job.config.queue_per_worker)
        loop.stats.work_seconds = time.perf_counter() - t1
    finally:
        pool.stop()
        loop.live.close()
        # A stopped driver's shards are free for the next run at once.
        release_run_leases(loop.dst_fs, loop.dst_root, job.job_key, job.run_id)
    loop.stats.live = loop.live.as_dict()
    return loop.stats


def seconds_since_process_start() -> float:
    """Wall seconds since this process started (what a user waits before any image is worked on).

    Linux: from ``/proc`` (start time in clock ticks since boot); elsewhere, since recodec's
    job-level steps were imported, which is within a fraction of a second of the start.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat", encoding="ascii") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        return time.time() - (boot + start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time() - _IMPORTED_AT


def remove_unreferenced_outputs(job: Job, shard: Shard) -> list[str]:
    """Remove the outputs a shard could have written that no committed row references.

    The plan claimed every name a source can be written under (:mod:`recodec.tasks.naming`), so
    these are the only places a lost worker can have left an output.  A name that any committed
    row of any job points to is kept.  Returns the removed paths.
    """
    from recodec.manifest import read_manifest
    from recodec.storage import join
    from recodec.tasks.outputs import dest_path
    from recodec.tasks.planning import copy_key

    dst_fs, dst_root = url_to_fs(job.dst, job.storage_options)
    suffixes = job_naming(job).suffixes
    candidates: set[str] = set()
    for item in shard.items:
        if not item.dest_key:
            continue  # unsafe key: nothing was ever written for it
        candidates.update(join(dst_root, item.dest_key + s) for s in suffixes)
        if item.keep_key is None or item.keep_key:
            candidates.add(join(dst_root, copy_key(item)))
    present = [p for p in sorted(candidates) if dst_fs.exists(p)]
    if not present:
        return []
    rows = read_manifest(job.dst, job.storage_options, unreadable=[]).to_pylist()
    referenced = {dest_path(r, dst_fs, dst_root, job.storage_options)[1] for r in rows
                  if r.get("dest_uri") or r.get("dest_key")}
    removed = [p for p in present if p not in referenced]
    for path in removed:
        dst_fs.rm_file(path)
    return removed


def _list(fs: Any, path: str) -> list[str]:
    try:
        return fs.ls(path, detail=False)
    except FileNotFoundError:
        return []


def summarize(job: Job, stats: RunStats, delta_report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Totals of the whole job (this invocation and resumed shards) from its committed manifest."""
    import pyarrow.compute as pc

    from recodec.manifest import read_manifest

    table = read_manifest(job.dst, job.storage_options)
    table = table.filter(pc.equal(table["job_key"], job.job_key))
    import duckdb

    con = duckdb.connect()
    con.register("m", table)
    row = con.sql("""
        SELECT count(*) AS images,
               count(*) FILTER (status = 'ok') AS ok,
               count(*) FILTER (status = 'failed') AS failed,
               count(*) FILTER (status = 'skipped') AS skipped,
               coalesce(sum(source_bytes) FILTER (status = 'ok'), 0) AS bytes_before,
               coalesce(sum(dest_bytes) FILTER (status = 'ok'), 0) AS bytes_after,
               avg(bpp) FILTER (status = 'ok') AS mean_bpp,
               avg(psnr) FILTER (status = 'ok' AND isfinite(psnr)) AS mean_psnr,
               avg(ssim) FILTER (status = 'ok') AS mean_ssim,
               avg(ms_ssim) FILTER (status = 'ok') AS mean_ms_ssim,
               min(task_agreement) FILTER (status = 'ok') AS min_task_agreement
        FROM m""").fetchall()[0]
    cols = ["images", "ok", "failed", "skipped", "bytes_before", "bytes_after", "mean_bpp", "mean_psnr",
            "mean_ssim", "mean_ms_ssim", "min_task_agreement"]
    out: dict[str, Any] = dict(zip(cols, row))
    out["ratio"] = (out["bytes_before"] / out["bytes_after"]) if out["bytes_after"] else None
    out.update(
        run_id=job.run_id, job_key=job.job_key, codec=job.codec, dst=job.dst,
        shards=stats.shards_total, shards_resumed=stats.shards_resumed, shards_failed=stats.shards_failed,
        shards_uncommitted=stats.shards_uncommitted, shards_leased=stats.shards_leased,
        images_this_run=stats.images_done, startup_seconds=round(stats.startup_seconds, 3),
        work_seconds=round(stats.work_seconds, 3), executor=stats.executor,
        first_errors=stats.errors[:10], delta=delta_report, **stats.live,
    )
    return out
