"""Job-level steps of a recompression run: prepare, plan, compress on Ray, summarise.

Each step is a plain function taking typed config; :mod:`recodec.flows.recompress`
wraps them as Prefect tasks.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recodec.codecs import expand_codecs, get_codec
from recodec.config import RunConfig
from recodec.errors import ConfigError
from recodec.manifest import MANIFEST_SCHEMA, PartSink, manifest_part_path, state_path, to_table
from recodec.storage import scrub, url_to_fs
from recodec.tasks.compress import JobSpec, ShardResult
from recodec.tasks.planning import PlanSummary, Shard, iter_shards, plan_job
from recodec.tasks.workers import CompressWorker, ensure_ray, run_bounded, start_actors, stop_actors

Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    """Default progress sink: one line on stderr."""
    print(message, file=sys.stderr, flush=True)


def new_run_id() -> str:
    """A sortable, unique id for one invocation: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def resolve_candidates(codec_spec: str, params: dict[str, Any], quality: float | None) -> dict[str, dict[str, Any]]:
    """Resolved params per candidate codec; with several codecs each gets the params it knows.

    A parameter that no candidate knows is an error, and so is ``--quality`` when no candidate
    has a 1-100 quality, so nobody silently gets a default.
    """
    names = expand_codecs(codec_spec)
    if len(names) == 1:
        return {names[0]: get_codec(names[0]).resolve_params(params, quality=quality)}
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for name in names:
        codec = get_codec(name)
        mine = {k: v for k, v in params.items() if k in codec.all_params()}
        used.update(mine)
        out[name] = codec.resolve_params(mine, quality=quality if codec.knob.quality_shortcut else None)
    unknown = sorted(set(params) - used)
    if unknown:
        raise ConfigError(f"no candidate codec has parameter(s) {', '.join(unknown)}")
    if quality is not None and not any(get_codec(n).knob.quality_shortcut for n in names):
        raise ConfigError("--quality needs a codec with a 1-100 quality; use --param")
    return out


def prepare_job(config: RunConfig) -> JobSpec:
    """Resolve codec params (failing fast on bad ones) and derive the job key and run id."""
    from recodec.imageio import output_extension

    params = resolve_candidates(config.codec, config.params, config.quality)
    if config.target:
        from recodec.target import parse_target

        parse_target(config.target)  # fail before listing anything
    elif len(params) > 1:
        raise ConfigError("several codecs need a --target to choose between them")
    (first, *rest) = params
    plan_ext = "" if rest else output_extension(
        get_codec(first), "geotiff" if config.container == "geotiff" else "raw")
    return JobSpec(
        src=config.src, dst=config.dst, codec=config.codec, params=params,
        container=config.container, job_key=config.job_key(params),
        run_id=config.run_id or new_run_id(), plan_extension=plan_ext, target=config.target,
        max_pixels=config.max_pixels, image_timeout_s=config.image_timeout_s,
        allow_growth=config.allow_growth, copy_unchanged=config.copy_unchanged,
        storage_options=config.storage_options,
    )


def plan(config: RunConfig, spec: JobSpec) -> PlanSummary:
    """List SRC and persist the shard plan (or reuse the persisted one)."""
    return plan_job(
        config.src, config.dst, spec.job_key, extension=spec.plan_extension,
        extensions=tuple(config.extensions), shard_size=config.shard_size, shard_bytes=config.shard_bytes,
        job_info={"job_key": spec.job_key, "codec": spec.codec, "params": spec.params,
                  "config": config.public_dict()},
        storage_options=config.storage_options,
    )


@dataclass
class RunStats:
    """Counts of one invocation (resumed shards are counted, not redone)."""

    shards_total: int = 0
    shards_done: int = 0
    shards_resumed: int = 0
    shards_failed: int = 0
    #: Shards whose part could not be written even by the driver: a re-run completes them.
    shards_uncommitted: int = 0
    images_done: int = 0
    startup_seconds: float = 0.0
    work_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _lost_shard_rows(spec: JobSpec, shard: Shard, exc: BaseException) -> list[dict[str, Any]]:
    """Failed rows for a shard whose worker died past its retries, so no image goes unrecorded."""
    from recodec.tasks.compress import base_row

    src_fs, src_root = url_to_fs(spec.src, spec.storage_options)
    first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for item in shard.items:
        row = base_row(spec, shard.shard_id, item, src_fs, src_root)
        row.update(status="failed", error=f"worker_lost: {type(exc).__name__}: {first_line}", created_at=now)
        rows.append(row)
    return rows


def compress(config: RunConfig, spec: JobSpec, summary: PlanSummary,
             progress: Progress = stderr_progress) -> RunStats:
    """Compress every uncommitted shard on a pool of Ray actors and commit their parts."""
    t0 = time.perf_counter()
    stats = RunStats(shards_total=summary.shards)
    dst_fs, dst_root = url_to_fs(config.dst, config.storage_options)
    sink = PartSink(config.dst, config.storage_options)
    committed = {p.rsplit("/", 1)[-1] for p in _list(dst_fs, state_path(dst_root, "manifest", f"job={spec.job_key}"))}

    def todo() -> Any:
        for shard in iter_shards(config.dst, spec.job_key, summary.shards, config.storage_options):
            if manifest_part_path(dst_root, spec.job_key, shard.shard_id).rsplit("/", 1)[-1] in committed:
                stats.shards_resumed += 1
                continue
            yield shard

    def report() -> None:
        done = stats.shards_done + stats.shards_resumed + stats.shards_failed + stats.shards_uncommitted
        progress(f"[recodec] shards {done}/{stats.shards_total} (resumed {stats.shards_resumed}, "
                 f"failed {stats.shards_failed}, uncommitted {stats.shards_uncommitted}), "
                 f"images {stats.images_done}, {time.perf_counter() - t0:.1f}s")

    def on_result(shard: Shard, res: ShardResult) -> None:
        try:
            if res.staging is None:  # the worker could not stage it: write it from here
                sink.write_part(to_table(res.rows or [], MANIFEST_SCHEMA), res.final)
            else:
                sink.commit(res.staging, res.final)
        except Exception as exc:
            # Left uncommitted on purpose: its outputs are rewritten and the part committed
            # by the next run of this job; audit reports the gap meanwhile.
            stats.shards_uncommitted += 1
            stats.errors.append(scrub(f"shard {shard.shard_id}: manifest part not committed, re-run to "
                                      f"complete: {type(exc).__name__}: {exc}", config.storage_options))
            report()
            return
        stats.shards_done += 1
        stats.images_done += res.ok + res.failed + res.skipped
        stats.errors.extend(res.errors[:5])
        report()

    def on_error(shard: Shard, exc: BaseException) -> None:
        rows = _lost_shard_rows(spec, shard, exc)
        sink.write_part(to_table(rows, MANIFEST_SCHEMA),
                        manifest_part_path(dst_root, spec.job_key, shard.shard_id))
        stats.shards_failed += 1
        stats.images_done += len(rows)
        stats.errors.append(f"shard {shard.shard_id}: {rows[0]['error']}")
        report()

    ensure_ray(config.ray_address)
    actors = start_actors(CompressWorker, (spec,), config.workers, config.gpus_per_worker)
    try:
        import ray

        ray.get([a.name.remote() for a in actors])  # codec loaded everywhere before timing work
        stats.startup_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        run_bounded(actors, todo(), lambda a, s: a.run.remote(s), on_result, on_error,
                    queue_per_worker=config.queue_per_worker)
        stats.work_seconds = time.perf_counter() - t1
    finally:
        stop_actors(actors)
    if stats.shards_resumed and not stats.shards_done:
        report()
    return stats


def _list(fs: Any, path: str) -> list[str]:
    try:
        return fs.ls(path, detail=False)
    except FileNotFoundError:
        return []


def summarize(config: RunConfig, spec: JobSpec, stats: RunStats) -> dict[str, Any]:
    """Totals of the whole job (this invocation and resumed shards) from its committed manifest."""
    import pyarrow.compute as pc

    from recodec.manifest import read_manifest

    table = read_manifest(config.dst, config.storage_options)
    table = table.filter(pc.equal(table["job_key"], spec.job_key))
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
               avg(ms_ssim) FILTER (status = 'ok') AS mean_ms_ssim
        FROM m""").fetchall()[0]
    cols = ["images", "ok", "failed", "skipped", "bytes_before", "bytes_after", "mean_bpp", "mean_psnr",
            "mean_ssim", "mean_ms_ssim"]
    out: dict[str, Any] = dict(zip(cols, row))
    out["ratio"] = (out["bytes_before"] / out["bytes_after"]) if out["bytes_after"] else None
    out.update(
        run_id=spec.run_id, job_key=spec.job_key, codec=spec.codec, dst=config.dst,
        shards=stats.shards_total, shards_resumed=stats.shards_resumed, shards_failed=stats.shards_failed,
        shards_uncommitted=stats.shards_uncommitted,
        images_this_run=stats.images_done, startup_seconds=round(stats.startup_seconds, 3),
        work_seconds=round(stats.work_seconds, 3),
        first_errors=stats.errors[:10],
    )
    return out
