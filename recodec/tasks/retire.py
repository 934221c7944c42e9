"""Retire originals only after proof: delete (or move to trash) sources whose output is verified.

A source under SRC is retired only when every one of these holds (else it is *refused* with
the first reason that failed, in this order):

1. ``latest_not_ok``     its newest row (the ``latest`` view) is ok, or an unchanged-copy row;
2. ``no_verdict``        a reconcile verdict exists for that row (same output, run and job);
3. ``verdict_not_ok``    the newest such verdict is ``ok``;
4. ``verdict_stale``     ...and it was checked after the row was written;
5. ``audit_violation``   a fresh ``audit SRC DST`` reports nothing naming the source, its key or its
   output (any violation class, so classes added later are covered); a violation on recodec's own
   state (an unreadable manifest part) blocks every source;
6. ``source_changed``    the source's current ETag (or mtime+size, plus a SHA-256 taken when the
   intent is logged, on local disks) equals the pinned one *at the moment of deletion*: S3
   ``DeleteObject`` with ``If-Match``; local disks claim the file by an atomic rename and check
   the claimed file; other stores re-check immediately before deleting;
7. ``copy_mismatch``     an unchanged-copy row's copy has exactly the source's bytes.

Dry run by default.  With ``yes``, each batch's ``intent`` rows are committed to the retirement
log (:mod:`recodec.tasks.retire_log`) before anything is touched, then the outcome rows.  A re-run
skips retired sources and completes interrupted ones.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from recodec.digest import sha256_hex
from recodec.layout import STATE_DIR
from recodec.manifest import connect
from recodec.storage import etag_of, full_url, protocol_of, url_to_fs
from recodec.tasks.retire_log import ActionLog, newest_phase, trash_uri_for

BATCH = 256

_CANDIDATES = """
    WITH v AS (SELECT * FROM reconcile
               QUALIFY row_number() OVER (PARTITION BY dest_uri, run_id, job_key ORDER BY checked_at DESC) = 1)
    SELECT l.source_uri, l.source_key, l.source_etag, l.source_bytes, l.run_id, l.job_key, l.status,
           l.container, l.dest_uri, l.dest_sha256, l.created_at, v.check_id, v.verdict, v.checked_at
    FROM latest l LEFT JOIN v ON v.dest_uri = l.dest_uri AND v.run_id = l.run_id AND v.job_key = l.job_key
    WHERE starts_with(l.source_uri, $prefix)
    ORDER BY l.source_uri"""


@dataclass
class RetireResult:
    """What a retire invocation found and did."""

    retire_id: str
    dry_run: bool
    candidates: int = 0
    eligible: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    already_retired: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Refusals per reason code."""
        return dict(Counter(r.split(":", 1)[0] for r in self.refused.values()))


def _blocking(report: Any, dst_root_url: str) -> tuple[set[str], bool]:
    """Names (URIs, keys) that audit violations mention, and whether one blocks everything."""
    names: set[str] = set()
    block_all = False
    state = dst_root_url.rstrip("/") + "/" + STATE_DIR + "/"
    for v in report.violations:
        names.add(v["uri"])
        names.update(w.strip("'\",()") for w in str(v.get("detail") or "").split())
        block_all |= v["uri"].startswith(state)
    return names, block_all


def _static_refusal(row: dict[str, Any], names: set[str], block_all: bool) -> str | None:
    is_copy = row["container"] == "copy" and row["dest_uri"] is not None
    if row["status"] != "ok" and not is_copy:
        return f"latest_not_ok: {row['status']}"
    if row["check_id"] is None:
        return "no_verdict: reconcile has not checked this row"
    if row["verdict"] != "ok":
        return f"verdict_not_ok: {row['verdict']}"
    if row["checked_at"] <= row["created_at"]:
        return "verdict_stale: checked before the row was written"
    if block_all:
        return "audit_violation: recodec state under DST is damaged"
    hit = {row["source_uri"], row["source_key"], row["dest_uri"]} & names
    if hit:
        return f"audit_violation: {sorted(hit)[0]}"
    return None


def _select(src: str, dst: str, storage_options: dict[str, Any] | None,
            result: RetireResult) -> list[dict[str, Any]]:
    """Rows that pass every condition that does not need the source itself."""
    from recodec.tasks.audit import audit

    sfs, sroot = url_to_fs(src, storage_options)
    dfs, droot = url_to_fs(dst, storage_options)
    con = connect(dst, storage_options)
    cur = con.execute(_CANDIDATES, {"prefix": full_url(sfs, sroot).rstrip("/") + "/"})
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    log = newest_phase(dst, storage_options)
    names, block_all = _blocking(audit(src, dst, storage_options), full_url(dfs, droot))
    out = []
    for row in rows:
        result.candidates += 1
        state = log.get(row["source_uri"])
        if state and state["phase"] == "done":
            result.already_retired += 1
            continue
        # An intent whose source is gone: the action ran and only its outcome row is missing.
        row["interrupted"] = bool(state and state["phase"] == "intent"
                                  and not sfs.exists(posixpath.join(sroot, row["source_key"])))
        row["intent_sha"] = state["source_sha256"] if row["interrupted"] else None
        if not row["interrupted"] and (why := _static_refusal(row, names, block_all)):
            result.refused[row["source_uri"]] = why
            continue
        out.append(row)
    return out


def _pin_check(fs: Any, path: str, row: dict[str, Any],
               storage_options: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """``(refusal, source_sha256)`` from the source as it is now (hashed on local disks and for copies)."""
    try:
        fs.invalidate_cache(path)
        info = fs.info(path)
    except FileNotFoundError:
        return "source_changed: source no longer exists", None
    if etag_of(info) != row["source_etag"] or int(info.get("size") or 0) != row["source_bytes"]:
        return f"source_changed: pin {row['source_etag']} -> {etag_of(info)}", None
    is_copy = row["container"] == "copy"
    digest = sha256_hex(fs.cat_file(path)) if is_copy or protocol_of(fs) == "file" else None
    if is_copy:
        dfs, dpath = url_to_fs(row["dest_uri"], storage_options)
        try:
            copy_digest = sha256_hex(dfs.cat_file(dpath))
        except FileNotFoundError:
            copy_digest = None
        if not digest == copy_digest == row["dest_sha256"]:
            return "copy_mismatch: the copy's bytes differ from the source's", None
    return None, digest


def _log_row(row: dict[str, Any], phase: str, *, action: str, trash_uri: str | None, detail: str = "",
             sha: str | None = None) -> dict[str, Any]:
    return {"source_uri": row["source_uri"], "source_etag": row["source_etag"],
            "source_bytes": row["source_bytes"], "source_sha256": sha, "row_run_id": row["run_id"],
            "job_key": row["job_key"], "dest_uri": row["dest_uri"], "check_id": row["check_id"],
            "action": action, "trash_uri": trash_uri, "phase": phase, "detail": detail}


def retire(src: str, dst: str, *, trash: str | None = None, yes: bool = False,
           storage_options: dict[str, Any] | None = None) -> RetireResult:
    """Retire every verified source of SRC recorded in DST (a dry run unless ``yes``)."""
    from recodec.tasks.retire_act import act, finish_interrupted

    retire_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    result = RetireResult(retire_id=retire_id, dry_run=not yes)
    rows = _select(src, dst, storage_options, result)
    sfs, sroot = url_to_fs(src, storage_options)
    log = ActionLog(dst, retire_id, storage_options)
    action = "trash" if trash else "delete"
    for start in range(0, len(rows), BATCH):
        intents, ready = [], []
        for row in rows[start:start + BATCH]:
            path = posixpath.join(sroot, row["source_key"])
            trash_uri = trash_uri_for(trash, row["source_key"]) if trash else None
            if row["interrupted"]:
                if yes:  # the action began; its outcome row did not make it to the log
                    phase, detail = finish_interrupted(path, trash_uri, row["intent_sha"], storage_options) \
                        if protocol_of(sfs) == "file" else ("done", "completed by a re-run after an interruption")
                    log.write([_log_row(row, phase, action=action, trash_uri=trash_uri, detail=detail,
                                        sha=row["intent_sha"])])
                    if phase != "done":
                        result.refused[row["source_uri"]] = detail
                        continue
                result.retired.append(row["source_uri"])
                continue
            why, sha = _pin_check(sfs, path, row, storage_options)
            if why:
                result.refused[row["source_uri"]] = why
                continue
            result.eligible.append(row["source_uri"])
            intents.append(_log_row(row, "intent", action=action, trash_uri=trash_uri, sha=sha))
            ready.append((row, path, trash_uri, sha))
        if not yes or not ready:
            continue
        log.write(intents)  # durable before any source is touched
        outcomes = [act(sfs, path, row, trash_uri, sha, storage_options) for row, path, trash_uri, sha in ready]
        log.write([_log_row(row, phase, action=action, trash_uri=t, detail=detail, sha=sha)
                   for (row, _, t, sha), (phase, detail) in zip(ready, outcomes)])
        for (row, *_), (phase, detail) in zip(ready, outcomes):
            if phase == "done":
                result.retired.append(row["source_uri"])
            elif phase == "refused":
                result.refused[row["source_uri"]] = detail
            else:
                result.errors[row["source_uri"]] = detail
    return result
