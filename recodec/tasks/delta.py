"""Incremental runs: what a re-run of a job must process, computed against what the job recorded.

A re-run of job ``K`` (same SRC, codec, params...) lists SRC again and plans, as new shards
appended to K's plan, exactly:

* ``new``      keys the job never planned;
* ``changed``  keys whose ETag (object stores) or mtime+size (local) or size differs from the pin
  of the job's newest row for that key (or of its plan item while that is still pending);
* ``retry``    with ``retry_failed``, keys whose newest row failed with a retryable reason
  (:data:`recodec.errors.RETRYABLE_REASONS`).

Keys the job recorded that are no longer listed are reported as ``disappeared``; nothing is
deleted.  The listing is streamed into an on-disk DuckDB database in chunks, next to an index
of the job's plan and rows, and the delta is one anti-join there; DuckDB spills to disk, so the
driver's memory stays flat at millions of objects.  Pending shards (planned, not committed) are
left to the ordinary resume, so a key is never planned twice in one run.

::

    listing (stream) --chunks--> duckdb.listing(seq, key, size, etag)
    plan shard files ----------> duckdb.plan(shard_id, key, size, etag, dest_key, keep_key)
    committed parts (5 cols) --> duckdb.rows(shard_id, source_key, etag, bytes, status, error, created_at)
                                      |
               pin = newest plan item per key, overridden by its newest row
               delta = listing LEFT JOIN pin  -> new | changed | retry   (ordered by seq)
               gone  = pin ANTI JOIN listing
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recodec.errors import RETRYABLE_REASONS
from recodec.layout import delta_record_path, manifest_job_dir
from recodec.storage import UnsafeKeyError, atomic_write, url_to_fs
from recodec.tasks.naming import NameClaims, Naming, possible_suffixes
from recodec.tasks.planning import (
    PlanItem, PlanSummary, dest_key_for, group_shards, iter_listing, iter_shards, write_complete, write_shard,
)

#: Listing rows inserted into DuckDB at a time (bounds the driver's memory while listing).
CHUNK = 50_000
#: Keys kept per category for the report (the counts are exact).
SAMPLE = 20


@dataclass
class DeltaReport:
    """What a re-run found: counts per category, a few example keys, the shards it appended."""

    run_id: str
    listed: int = 0
    new: int = 0
    changed: int = 0
    retry: int = 0
    unchanged: int = 0
    pending: int = 0
    disappeared: int = 0
    first_shard: int = 0
    shards_added: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the run summary and the persisted record)."""
        return asdict(self)


def _connect(workdir: str) -> Any:
    import duckdb

    con = duckdb.connect(posixpath.join(workdir, "delta.duckdb"))
    # Bounded memory: DuckDB spills joins and sorts to its temp directory beyond this.
    con.execute(f"SET memory_limit='256MB'; SET temp_directory='{workdir}/spill'; SET threads=2")
    con.execute("CREATE TABLE listing(seq BIGINT, key VARCHAR, size BIGINT, etag VARCHAR)")
    con.execute("CREATE TABLE plan(shard_id BIGINT, key VARCHAR, size BIGINT, etag VARCHAR, dest_key VARCHAR, "
                "keep_key VARCHAR)")
    con.execute("CREATE TABLE rows(shard_id BIGINT, source_key VARCHAR, source_etag VARCHAR, "
                "source_bytes BIGINT, status VARCHAR, error VARCHAR, created_at TIMESTAMPTZ)")
    return con


def _load_listing(con: Any, listing: Iterator[Any]) -> int:
    n = 0
    cols: dict[str, list[Any]] = {"seq": [], "key": [], "size": [], "etag": []}

    def flush() -> None:
        if cols["seq"]:
            chunk = pa.table(cols)  # noqa: F841  (read by DuckDB's replacement scan)
            con.execute("INSERT INTO listing SELECT * FROM chunk")
            for v in cols.values():
                v.clear()

    for obj in listing:
        cols["seq"].append(n)
        cols["key"].append(obj.key)
        cols["size"].append(obj.size)
        cols["etag"].append(obj.etag)
        n += 1
        if len(cols["seq"]) >= CHUNK:
            flush()
    flush()
    return n


def _load_plan(con: Any, dst: str, job_key: str, shards: int, storage_options: dict[str, Any] | None) -> None:
    cols: dict[str, list[Any]] = {"shard_id": [], "key": [], "size": [], "etag": [], "dest_key": [], "keep_key": []}
    for shard in iter_shards(dst, job_key, shards, storage_options):
        for item in shard.items:
            for name, value in zip(cols, (shard.shard_id, item.key, item.size, item.etag, item.dest_key,
                                               item.keep_key)):
                cols[name].append(value)
        if len(cols["key"]) >= CHUNK or shard.shard_id == shards - 1:
            chunk = pa.table(cols)  # noqa: F841
            con.execute("INSERT INTO plan SELECT * FROM chunk")
            for v in cols.values():
                v.clear()


_ROW_COLS = ["shard_id", "source_key", "source_etag", "source_bytes", "status", "error", "created_at"]


def _load_rows(con: Any, dst: str, job_key: str, storage_options: dict[str, Any] | None) -> None:
    fs, root = url_to_fs(dst, storage_options)
    base = manifest_job_dir(root, job_key)
    if not fs.exists(base):
        return
    for path in sorted(p for p in fs.find(base) if p.endswith(".parquet")):
        with fs.open(path, "rb") as fh:
            part = pq.read_table(fh, columns=_ROW_COLS)  # noqa: F841  (only the pin columns)
        con.execute("INSERT INTO rows SELECT * FROM part")


def _classify(con: Any, retry_failed: bool) -> None:
    reasons = ", ".join(f"'{r}'" for r in sorted(RETRYABLE_REASONS))
    con.execute("""
        CREATE TABLE pin AS
        WITH p AS (SELECT * FROM plan QUALIFY row_number() OVER (PARTITION BY key ORDER BY shard_id DESC) = 1),
             r AS (SELECT * FROM rows
                   QUALIFY row_number() OVER (PARTITION BY source_key ORDER BY created_at DESC) = 1),
             done AS (SELECT DISTINCT shard_id FROM rows)
        SELECT p.key, p.dest_key, p.keep_key,
               CASE WHEN contains(p.key, '/') THEN regexp_replace(p.key, '/[^/]*$', '') ELSE '' END AS folder,
               coalesce(r.source_etag, p.etag) AS etag, coalesce(r.source_bytes, p.size) AS size,
               r.status, r.error, p.shard_id NOT IN (SELECT shard_id FROM done) AS pending
        FROM p LEFT JOIN r ON r.source_key = p.key""")
    con.execute(f"""
        CREATE TABLE delta AS
        SELECT l.seq, l.key, l.size, l.etag, pin.dest_key, pin.keep_key,
               CASE WHEN pin.key IS NULL THEN 'new'
                    WHEN pin.pending THEN 'pending'
                    WHEN l.etag IS DISTINCT FROM pin.etag OR l.size IS DISTINCT FROM pin.size THEN 'changed'
                    WHEN {str(retry_failed).upper()} AND pin.status = 'failed'
                         AND trim(split_part(coalesce(pin.error, ''), ':', 1)) IN ({reasons}) THEN 'retry'
                    ELSE 'unchanged' END AS why
        FROM listing l LEFT JOIN pin USING (key)""")


def _tally(con: Any, report: DeltaReport) -> None:
    for why, n in con.execute("SELECT why, count(*) FROM delta GROUP BY why").fetchall():
        setattr(report, why, n)
    for why in ("new", "changed", "retry"):
        keys = con.execute("SELECT key FROM delta WHERE why = ? ORDER BY seq LIMIT ?", [why, SAMPLE]).fetchall()
        if keys:
            report.examples[why] = [k for (k,) in keys]
    report.disappeared = con.execute("SELECT count(*) FROM pin ANTI JOIN listing USING (key)").fetchone()[0]
    gone = con.execute(f"SELECT key FROM pin ANTI JOIN listing USING (key) ORDER BY key LIMIT {SAMPLE}").fetchall()
    if gone:
        report.examples["disappeared"] = [k for (k,) in gone]


def _items(con: Any, naming: Naming) -> Iterator[PlanItem]:
    """Delta rows in listing order as plan items; new keys get output names no job item holds.

    Before a new key of a folder is named, every name the job's plan already gave in that folder
    is claimed (:mod:`recodec.tasks.naming`), so a new source never takes an existing output's name.
    """
    cur = con.cursor()
    cur.execute("SELECT key, size, etag, dest_key, keep_key FROM delta "
                "WHERE why IN ('new', 'changed', 'retry') ORDER BY seq")
    check = con.cursor()
    claims, loaded = NameClaims(), set()
    try:
        while batch := cur.fetchmany(CHUNK):
            for key, size, etag, dest, keep in batch:
                if dest is None:
                    folder = posixpath.dirname(key)
                    if folder not in loaded:
                        _claim_planned(check, claims, folder, naming)
                        loaded.add(folder)
                    try:
                        dest, keep = dest_key_for(key, naming.extension, claims, naming)
                    except UnsafeKeyError:
                        dest, keep = "", ""  # gets its own failed row (unsafe_key), like in a first plan
                yield PlanItem(key, size, etag, dest, keep)
    finally:
        claims.close()


def _claim_planned(con: Any, claims: NameClaims, folder: str, naming: Naming) -> None:
    """Claim every name the job's plan gave to sources of ``folder`` (bases with each suffix, kept keys)."""
    taken = claims.folder(folder)
    for dest, keep in con.execute("SELECT dest_key, keep_key FROM pin WHERE folder = ?", [folder]).fetchall():
        if dest:
            base = posixpath.basename(dest)
            taken.update((base + s).casefold() for s in naming.suffixes)
        if keep:
            taken.add(posixpath.basename(keep).casefold())


def plan_delta(src: str, dst: str, summary: PlanSummary, *, run_id: str, extension: str | Naming,
               extensions: tuple[str, ...], shard_size: int, shard_bytes: int, retry_failed: bool,
               storage_options: dict[str, Any] | None = None) -> tuple[PlanSummary, DeltaReport]:
    """Append the shards of a re-run's delta to a complete plan; return the new plan and the report."""
    report = DeltaReport(run_id=run_id, first_shard=summary.shards)
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    with tempfile.TemporaryDirectory(prefix="recodec-delta-") as workdir:
        con = _connect(workdir)
        try:
            report.listed = _load_listing(con, iter_listing(src, dst, extensions, storage_options))
            _load_plan(con, dst, summary.job_key, summary.shards, storage_options)
            _load_rows(con, dst, summary.job_key, storage_options)
            _classify(con, retry_failed)
            _tally(con, report)
            shards, images, nbytes = summary.shards, summary.images, summary.source_bytes
            naming = extension if isinstance(extension, Naming) else Naming(extension, possible_suffixes([extension]))
            for shard in group_shards(_items(con, naming), summary.shards, shard_size, shard_bytes):
                write_shard(dst_fs, dst_root, summary.job_key, shard)
                shards += 1
                images += len(shard.items)
                nbytes += shard.nbytes
        finally:
            con.close()
    report.shards_added = shards - summary.shards
    atomic_write(dst_fs, delta_record_path(dst_root, summary.job_key, run_id),
                 json.dumps(report.to_dict(), indent=2).encode())
    if report.shards_added:
        # Written last: until then the appended shard files are invisible to every reader.
        write_complete(dst_fs, dst_root, summary.job_key, shards, images, nbytes)
    return PlanSummary(summary.job_key, shards, images, nbytes, reused=True), report
