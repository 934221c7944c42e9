"""Audit: check the archive invariants of docs/reliability.md against storage.

Violations (each makes ``recodec audit`` exit non-zero):

* ``missing_row``      a planned source of a completed plan has no committed row in its job
* ``duplicate_row``    a source has more than one row in one job
* ``bad_status``       a row's status is not ok/failed/skipped, or a failed/skipped row has no reason
* ``output_missing``   an ok row's output does not exist
* ``output_mismatch``  an ok row's output has another size or SHA-256
* ``orphan_output``    an object under DST that no committed ok row points to
* ``source_modified``  a source's ETag/mtime or size differs from the one recorded in its row
* ``unreadable_part``  a committed manifest part is not a readable Parquet file of the schema

Staging leftovers (parts written but never committed) are reported as information: they are
invisible to readers by construction.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from recodec.config import STATE_DIR
from recodec.digest import sha256_hex
from recodec.manifest import MANIFEST_SCHEMA, STATUSES, state_path
from recodec.storage import etag_of, full_url, url_to_fs


@dataclass
class AuditReport:
    """Result of an audit: violations, plus counts and notes that are not violations."""

    violations: list[dict[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no invariant is violated."""
        return not self.violations

    def add(self, kind: str, uri: str, detail: str = "") -> None:
        """Record one violation."""
        self.violations.append({"kind": kind, "uri": uri, "detail": detail})


def _read_parts(fs: Any, root: str, report: AuditReport) -> list[dict[str, Any]]:
    base = state_path(root, "manifest")
    rows: list[dict[str, Any]] = []
    if not fs.exists(base):
        return rows
    for path in sorted(p for p in fs.find(base) if p.endswith(".parquet")):
        try:
            with fs.open(path, "rb") as fh:
                table = pq.read_table(fh)
            missing = set(MANIFEST_SCHEMA.names) - set(table.column_names)
            if missing - {"schema_version"} and "status" in missing:
                raise ValueError(f"columns missing: {sorted(missing)}")
        except Exception as exc:
            report.add("unreadable_part", full_url(fs, path), f"{type(exc).__name__}: {exc}")
            continue
        rows.extend(table.select([c for c in table.column_names if c != "psnr_per_band"]).to_pylist())
    return rows


def _check_plans(fs: Any, root: str, rows: list[dict[str, Any]], report: AuditReport) -> None:
    by_job: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_job.setdefault(r["job_key"], {})
        counts[r["source_key"]] = counts.get(r["source_key"], 0) + 1
    jobs_dir = state_path(root, "jobs")
    planned_jobs = [p.rsplit("/", 1)[-1] for p in (fs.ls(jobs_dir, detail=False) if fs.exists(jobs_dir) else [])]
    complete = 0
    for job in sorted(planned_jobs):
        plan_dir = posixpath.join(jobs_dir, job, "plan")
        if not fs.exists(posixpath.join(plan_dir, "_COMPLETE.json")):
            continue
        complete += 1
        counts = by_job.get(job, {})
        for path in sorted(p for p in fs.ls(plan_dir, detail=False) if p.rsplit("/", 1)[-1].startswith("shard-")):
            for key, *_ in json.loads(fs.cat_file(path)):
                if key not in counts:
                    report.add("missing_row", key, f"job {job}: planned, no committed row")
    for job, counts in by_job.items():
        for key, n in counts.items():
            if n > 1:
                report.add("duplicate_row", key, f"job {job}: {n} rows")
    report.info["jobs_with_complete_plan"] = complete


def _check_rows(fs: Any, root: str, rows: list[dict[str, Any]], src: str | None,
                storage_options: dict[str, Any] | None, report: AuditReport) -> set[str]:
    current: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r["status"] not in STATUSES:
            report.add("bad_status", r["source_uri"] or "", f"status {r['status']!r}")
        elif r["status"] != "ok" and not r.get("error"):
            report.add("bad_status", r["source_uri"] or "", f"{r['status']} row without a reason")
        if r.get("dest_uri"):  # ok outputs and verbatim copies of unchanged sources
            prev = current.get(r["dest_uri"])
            if prev is None or r["created_at"] > prev["created_at"]:
                current[r["dest_uri"]] = r
    for uri, r in sorted(current.items()):
        dfs, path = url_to_fs(uri, storage_options)
        try:
            data = dfs.cat_file(path)
        except FileNotFoundError:
            report.add("output_missing", uri)
            continue
        if len(data) != r["dest_bytes"] or sha256_hex(data) != r["dest_sha256"]:
            report.add("output_mismatch", uri, f"{len(data)} bytes, manifest says {r['dest_bytes']}")
    if src:
        sfs, _ = url_to_fs(src, storage_options)
        seen: set[str] = set()
        for r in rows:
            uri = r["source_uri"]
            if not uri or uri in seen:
                continue
            seen.add(uri)
            _, spath = url_to_fs(uri, storage_options)
            try:
                info = sfs.info(spath)
            except FileNotFoundError:
                report.add("source_modified", uri, "source no longer exists")
                continue
            if etag_of(info) != r["source_etag"] or int(info.get("size") or 0) != r["source_bytes"]:
                report.add("source_modified", uri, f"pin {r['source_etag']} -> {etag_of(info)}")
    return set(current)


def _check_orphans(fs: Any, root: str, referenced: set[str], report: AuditReport) -> None:
    state = posixpath.join(root, STATE_DIR)
    n = 0
    for path in fs.find(root):
        if path == state or path.startswith(state + "/"):
            continue
        n += 1
        if full_url(fs, path) not in referenced:
            report.add("orphan_output", full_url(fs, path), "no committed ok row points to it")
    report.info["outputs"] = n
    staging = state_path(root, "staging")
    report.info["uncommitted_staging_parts"] = len(fs.find(staging)) if fs.exists(staging) else 0


def audit(src: str | None, dst: str, storage_options: dict[str, Any] | None = None) -> AuditReport:
    """Check every invariant for DST (and, when ``src`` is given, that sources are unchanged)."""
    report = AuditReport()
    fs, root = url_to_fs(dst, storage_options)
    rows = _read_parts(fs, root, report)
    report.info["rows"] = len(rows)
    _check_plans(fs, root, rows, report)
    referenced = _check_rows(fs, root, rows, src, storage_options, report)
    _check_orphans(fs, root, referenced, report)
    return report
