"""Audit: check the archive invariants of docs/reliability.md against storage.

Violations (each makes ``recodec audit`` exit non-zero):

* ``missing_row``      a planned source of a completed plan has no committed row in its job
* ``duplicate_row``    a source has more than one row in one shard of a job
* ``bad_status``       a row's status is not ok/failed/skipped, or a failed/skipped row has no reason
* ``output_missing``   an ok row's output does not exist
* ``output_mismatch``  an ok row's output has another size or SHA-256
* ``output_collision`` two sources' current rows point to one output (only one can be there)
* ``orphan_output``    an object under DST that no committed ok row points to
* ``source_modified``  a source's ETag/mtime or size differs from the one recorded in its row
* ``unreadable_part``  a committed manifest part is not a readable Parquet file of the schema

Staging leftovers (parts written but never committed) are reported as information: they are
invisible to readers by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from recodec.digest import sha256_hex
from recodec import layout
from recodec.errors import UnsafeKeyError
from recodec.manifest import MANIFEST_SCHEMA, STATUSES
from recodec.storage import etag_of, full_url, join, url_to_fs
from recodec.tasks.outputs import collisions, current_rows, dest_path


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
    base = layout.parts_dir(root, "manifest")
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
    per_shard: dict[tuple[str, int, str], int] = {}
    for r in rows:
        counts = by_job.setdefault(r["job_key"], {})
        counts[r["source_key"]] = counts.get(r["source_key"], 0) + 1
        ident = (r["job_key"], r["shard_id"], r["source_key"])
        per_shard[ident] = per_shard.get(ident, 0) + 1
    jobs_dir = layout.jobs_dir(root)
    planned_jobs = [p.rsplit("/", 1)[-1] for p in (fs.ls(jobs_dir, detail=False) if fs.exists(jobs_dir) else [])]
    complete = 0
    for job in sorted(planned_jobs):
        marker = layout.plan_complete_path(root, job)
        if not fs.exists(marker):
            continue
        complete += 1
        counts = by_job.get(job, {})
        # Only the shards the marker counts: a re-run's delta appends shard files before the marker.
        for shard_id in range(json.loads(fs.cat_file(marker))["shards"]):
            for key, *_ in json.loads(fs.cat_file(layout.plan_shard_path(root, job, shard_id))):
                if key not in counts:
                    report.add("missing_row", key, f"job {job}: planned, no committed row")
    # A re-run of a job records a changed source again, in a new shard; twice in one shard is a bug.
    for (job, shard_id, key), n in per_shard.items():
        if n > 1:
            report.add("duplicate_row", key, f"job {job} shard {shard_id}: {n} rows")
    report.info["jobs_with_complete_plan"] = complete


def _check_rows(fs: Any, root: str, rows: list[dict[str, Any]], src: str | None,
                storage_options: dict[str, Any] | None, report: AuditReport) -> set[str]:
    for r in rows:
        if r["status"] not in STATUSES:
            report.add("bad_status", r["source_uri"] or "", f"status {r['status']!r}")
        elif r["status"] != "ok" and not r.get("error"):
            report.add("bad_status", r["source_uri"] or "", f"{r['status']} row without a reason")
    current = current_rows(rows)
    clashing = collisions(current, fs, root, storage_options)
    for path, group in sorted(clashing.items()):
        sources = ", ".join(sorted(r["source_uri"] for r in group))
        report.add("output_collision", full_url(fs, path), f"one output, {len(group)} sources: {sources}")
    from recodec.tasks.prune import pruned_outputs

    pruned = pruned_outputs(full_url(fs, root), storage_options)
    for r in current:
        dfs, path = dest_path(r, fs, root, storage_options)
        uri = full_url(dfs, path)
        if uri in pruned or r.get("dest_uri") in pruned:  # deleted by `recodec prune` after proof
            continue
        try:
            data = dfs.cat_file(path)
        except FileNotFoundError:
            report.add("output_missing", uri)
            continue
        if len(data) != r["dest_bytes"] or sha256_hex(data) != r["dest_sha256"]:
            report.add("output_mismatch", uri, f"{len(data)} bytes, manifest says {r['dest_bytes']}")
    report.info["current_outputs"] = len(current)
    referenced = {full_url(*dest_path(r, fs, root, storage_options)) for r in rows
                  if r.get("dest_uri") or r.get("dest_key")}
    # georeferencing sidecars (.aux.xml) belong to their output's row (reconcile checks their hash)
    return referenced | {r["sidecar_uri"] for r in rows if r.get("sidecar_uri")}


def _check_sources(rows: list[dict[str, Any]], src: str, dst: str, storage_options: dict[str, Any] | None,
                   report: AuditReport) -> None:
    """Every source read by a row still has the recorded pin (key joined to SRC, never parsed);
    a source retired by ``recodec retire`` must be gone, not changed."""
    from recodec.tasks.retire_log import retired_pins

    retired = retired_pins(dst, storage_options)
    sfs, sroot = url_to_fs(src, storage_options)
    newest: dict[str, dict[str, Any]] = {}
    for r in rows:  # the pin of a source's newest row is what it must match now
        key = r.get("source_key")
        if key and (key not in newest or r["created_at"] > newest[key]["created_at"]):
            newest[key] = r
    for key, r in sorted(newest.items()):
        try:
            path = join(sroot, key)
        except UnsafeKeyError:
            continue  # refused at planning (unsafe_key): nothing was read
        uri = full_url(sfs, path)
        try:
            info = sfs.info(path)
        except FileNotFoundError:
            gone_on_purpose = uri in retired or r.get("source_uri") in retired
            if not gone_on_purpose and not (_missing_when_read(r) and _dangling_link(sfs, path)):
                report.add("source_modified", uri, "source no longer exists")
            continue  # a link that was dangling when read and still is: unchanged, nothing to pin
        if etag_of(info) != r["source_etag"] or int(info.get("size") or 0) != r["source_bytes"]:
            report.add("source_modified", uri, f"pin {r['source_etag']} -> {etag_of(info)}")
    report.info["retired_sources"] = len(retired)


def _missing_when_read(row: dict[str, Any]) -> bool:
    return row["status"] == "failed" and (row.get("error") or "").startswith("source_missing")


def _dangling_link(fs: Any, path: str) -> bool:
    """A local symlink whose target does not exist (listed, but never readable)."""
    import os

    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem) and os.path.islink(path) and not os.path.exists(path)


def _check_orphans(fs: Any, root: str, referenced: set[str], report: AuditReport) -> None:
    n = 0
    for path in fs.find(root):
        if layout.is_under_state(root, path):
            continue
        n += 1
        if full_url(fs, path) not in referenced:
            report.add("orphan_output", full_url(fs, path), "no committed ok row points to it")
    report.info["outputs"] = n
    staging = layout.staging_dir(root)
    report.info["uncommitted_staging_parts"] = len(fs.find(staging)) if fs.exists(staging) else 0


def _report_superseded(dst: str, storage_options: dict[str, Any] | None, report: AuditReport) -> None:
    """Superseded outputs are reported (information, not violations): `recodec prune` removes them."""
    from recodec.tasks.prune import superseded_outputs

    found = superseded_outputs(dst, storage_options)
    report.info["superseded_outputs"] = len(found)
    if found:
        report.info["superseded_examples"] = [f"{r['dest_uri']} -> {r['replacement_uri']}" for r in found[:10]]


def audit(src: str | None, dst: str, storage_options: dict[str, Any] | None = None) -> AuditReport:
    """Check every invariant for DST (and, when ``src`` is given, that sources are unchanged)."""
    report = AuditReport()
    fs, root = url_to_fs(dst, storage_options)
    rows = _read_parts(fs, root, report)
    report.info["rows"] = len(rows)
    _check_plans(fs, root, rows, report)
    referenced = _check_rows(fs, root, rows, src, storage_options, report)
    if src:
        _check_sources(rows, src, dst, storage_options, report)
    _check_orphans(fs, root, referenced, report)
    _report_superseded(dst, storage_options, report)
    return report
