"""Shared helpers of the reliability tests: build archives, run jobs, check the invariants."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from recodec.config import RunConfig
from recodec.manifest import read_manifest
from recodec.tasks.audit import AuditReport, audit
from recodec.job import Job, prepare_job
from recodec.tasks.jobs import plan
from recodec.tasks.shard import ShardContext, ShardResult
from recodec.tasks.planning import Shard, iter_shards
from tests.reliability.faults import png_bytes

#: Reasons a failed or skipped row may carry (docs/manifest.md and docs/reliability.md).
REASONS = frozenset({
    "decode_error", "too_large", "unsupported", "codec_error", "roundtrip_mismatch", "source_changed",
    "source_missing", "storage_error", "unsafe_key", "timeout", "worker_lost", "internal_error",
    "no_gain", "out_of_memory", "target_unreachable",
})
#: What a corrupt or hostile *input* may fail with: anything else means the reader misclassified it.
INPUT_REASONS = frozenset({"decode_error", "too_large", "unsupported", "corrupt_source", "implausible_header",
                           "multiframe", "cmyk", "unsupported_photometric", "content_not_carried"})

FAULT_CODECS = "tests.reliability.faults"


def write_archive(root: Path, n: int, *, folders: int = 2, sizes: dict[int, tuple[int, int]] | None = None,
                  seed: int = 0) -> list[str]:
    """Write ``n`` small PNGs under ``root`` in ``folders`` folders; return their keys.

    Image ``i`` is the ``i``-th source in listing order (folders hold consecutive images), so with
    ``shard_size=s`` it lands in shard ``i // s``.  ``sizes`` gives some images another
    (width, height): the fault codecs trigger on the width.
    """
    keys = []
    for i in range(n):
        width, height = (sizes or {}).get(i, (32, 32))
        key = f"f{i * folders // n}/img{i:04d}.png"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(seed + i, width, height))
        keys.append(key)
    return sorted(keys)


def job_config(src: str | Path, dst: str | Path, **overrides: Any) -> RunConfig:
    """A small, fast job: JPEG q80, 2 images per shard, growth allowed (tiny images), run in this process.

    The in-process worker runs the same shard code as an actor; tests about actors (deaths,
    restarts, hangs, their logs) pass ``executor="ray"``, which gives 2 actors.  Each Ray run
    starts fresh actor processes (a torch import each), the suite's largest CPU cost.
    """
    values: dict[str, Any] = dict(codec="jpeg", quality=80, shard_size=2, workers=2, allow_growth=True,
                                  image_timeout_s=60.0, executor="local")
    values.update(overrides)
    return RunConfig(src=str(src), dst=str(dst), **values).validate()


def fault_codec(name: str) -> str:
    """The by-path name of a codec in :mod:`tests.reliability.faults`."""
    return f"{FAULT_CODECS}:{name}"


def run_job(config: RunConfig) -> dict[str, Any]:
    """Run the ``recompress`` Prefect flow (on the config's executor, commits) and return its summary."""
    from recodec.flows.recompress import recompress

    return recompress(config)


def rows_of(dst: str | Path, storage_options: dict[str, Any] | None = None,
            job_key: str | None = None) -> list[dict[str, Any]]:
    """Committed manifest rows under DST (of one job when ``job_key`` is given)."""
    rows = read_manifest(str(dst), storage_options).to_pylist()
    return [r for r in rows if job_key is None or r["job_key"] == job_key]


def reason(row: dict[str, Any]) -> str | None:
    """The reason code of a failed/skipped row (``"<reason>: message"``), None for ok rows."""
    return row["error"].split(":", 1)[0] if row.get("error") else None


def by_key(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows indexed by source key, asserting there is exactly one per key."""
    rows = list(rows)
    counts = Counter(r["source_key"] for r in rows)
    dupes = {k: n for k, n in counts.items() if n > 1}
    assert not dupes, f"sources with more than one row: {dupes}"
    return {r["source_key"]: r for r in rows}


def assert_one_row_each(rows: Iterable[dict[str, Any]], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every key has exactly one row and no other row exists; returns the rows by key."""
    indexed = by_key(rows)
    assert sorted(indexed) == sorted(keys)
    for row in indexed.values():
        assert row["status"] in ("ok", "failed", "skipped"), row
        if row["status"] == "ok":
            assert row["error"] is None and row["dest_uri"] and row["dest_sha256"], row
        else:
            assert reason(row) in REASONS and row["dest_uri"] is None, row
    return indexed


def audit_report(src: str | Path | None, dst: str | Path,
                 storage_options: dict[str, Any] | None = None) -> AuditReport:
    """Run ``recodec audit`` in process."""
    return audit(None if src is None else str(src), str(dst), storage_options)


def assert_audit_clean(src: str | Path | None, dst: str | Path,
                       storage_options: dict[str, Any] | None = None) -> AuditReport:
    """Audit DST and fail with the violations if any invariant is broken."""
    report = audit_report(src, dst, storage_options)
    assert report.ok, report.violations
    return report


def violation_kinds(report: AuditReport) -> Counter[str]:
    """How many violations of each kind an audit found."""
    return Counter(v["kind"] for v in report.violations)


def prepare_shards(config: RunConfig) -> tuple[Job, list[Shard]]:
    """Prepare and plan a job without Prefect or Ray; return it and its persisted shards."""
    spec = prepare_job(config)
    summary = plan(spec)
    return spec, list(iter_shards(config.dst, spec.job_key, summary.shards, config.storage_options))


def commit(ctx: ShardContext, result: ShardResult) -> bool:
    """Commit a staged part and release the shard's lease, as the driver does after a shard.

    Returns False when there was nothing to commit (another run held the lease or committed it).
    """
    if result.staging is None:
        return False
    won = ctx.sink.commit(result.staging, result.final)
    ctx.lease(result.shard_id).release()
    return won


def with_endpoint(options: dict[str, Any], endpoint: str, **config_kwargs: Any) -> dict[str, Any]:
    """A deep copy of s3fs storage options pointing at ``endpoint`` (e.g. a fault proxy)."""
    out = copy.deepcopy(options)
    out["client_kwargs"] = {**out.get("client_kwargs", {}), "endpoint_url": endpoint}
    if config_kwargs:
        out["config_kwargs"] = {**out.get("config_kwargs", {}), **config_kwargs}
    return out
