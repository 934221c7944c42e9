"""Superseded outputs: found by audit, removed by ``recodec prune`` once their replacement reconciled.

An output is *superseded* when the newest row of its source (the ``latest`` view) points at
another output: a job with new settings wrote the source again under another name (``a.jxl``
replaced by ``a.avif``).  The old file is still referenced by its old row, so it is no orphan,
but nobody needs it.  ``prune`` deletes it only when

1. the replacement row has an ok reconcile verdict newer than the row (``replacement_unverified``),
2. the old file still has the size and SHA-256 its row recorded (``old_output_changed``),

dry run by default; each deletion is logged under ``DST/_recodec/prune/<id>/`` before it is taken,
and audit and reconcile then treat the old output as pruned, not missing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from recodec.digest import sha256_hex
from recodec.manifest import connect, read_parts
from recodec.storage import url_to_fs
from recodec.tasks.retire_log import ActionLog

PRUNE_SCHEMA = pa.schema([
    ("schema_version", pa.int16()),
    ("prune_id", pa.string()),
    ("dest_uri", pa.string()),
    ("dest_sha256", pa.string()),
    ("source_uri", pa.string()),
    ("replacement_uri", pa.string()),
    ("phase", pa.string()),
    ("detail", pa.string()),
    ("logged_at", pa.timestamp("us", tz="UTC")),
])

_SUPERSEDED = """
    WITH cur AS (SELECT * FROM latest WHERE dest_uri IS NOT NULL),
         outs AS (SELECT * FROM manifest WHERE dest_uri IS NOT NULL
                  QUALIFY row_number() OVER (PARTITION BY dest_uri ORDER BY created_at DESC) = 1),
         v AS (SELECT * FROM reconcile
               QUALIFY row_number() OVER (PARTITION BY dest_uri, run_id, job_key ORDER BY checked_at DESC) = 1)
    SELECT o.dest_uri, o.dest_bytes, o.dest_sha256, o.source_uri, c.dest_uri AS replacement_uri,
           coalesce(v.verdict = 'ok' AND v.checked_at > c.created_at, false) AS replacement_verified
    FROM outs o JOIN cur c ON c.source_uri = o.source_uri AND c.dest_uri <> o.dest_uri
    LEFT JOIN v ON v.dest_uri = c.dest_uri AND v.run_id = c.run_id AND v.job_key = c.job_key
    WHERE o.dest_uri NOT IN (SELECT dest_uri FROM cur)
    ORDER BY o.dest_uri"""


def pruned_outputs(dst: str, storage_options: dict[str, Any] | None = None) -> set[str]:
    """Outputs that ``prune`` deleted (they are gone on purpose)."""
    log = read_parts(dst, "prune", PRUNE_SCHEMA, storage_options)
    return {r["dest_uri"] for r in log.to_pylist() if r["phase"] == "done"}


def superseded_outputs(dst: str, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every superseded output still on record (pruned ones left out), with its replacement."""
    # Damaged parts are audit's to report (unreadable_part); the rest still say what is superseded.
    con = connect(dst, storage_options, unreadable=[])
    cur = con.execute(_SUPERSEDED)
    cols = [d[0] for d in cur.description]
    gone = pruned_outputs(dst, storage_options)
    return [r for r in (dict(zip(cols, row)) for row in cur.fetchall()) if r["dest_uri"] not in gone]


@dataclass
class PruneResult:
    """What a prune invocation found and did."""

    prune_id: str
    dry_run: bool
    superseded: int = 0
    eligible: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def _check_old(row: dict[str, Any], storage_options: dict[str, Any] | None) -> str | None:
    fs, path = url_to_fs(row["dest_uri"], storage_options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return "old_output_changed: already gone"
    if len(data) != row["dest_bytes"] or sha256_hex(data) != row["dest_sha256"]:
        return "old_output_changed: size or SHA-256 differs from its row"
    return None


def prune(dst: str, *, yes: bool = False, storage_options: dict[str, Any] | None = None) -> PruneResult:
    """Delete superseded outputs whose replacement reconciled ok (a dry run unless ``yes``)."""
    prune_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    result = PruneResult(prune_id=prune_id, dry_run=not yes)
    log = ActionLog(dst, prune_id, storage_options, kind="prune", schema=PRUNE_SCHEMA, id_column="prune_id")
    for row in superseded_outputs(dst, storage_options):
        result.superseded += 1
        why = None if row["replacement_verified"] else "replacement_unverified: no ok verdict newer than its row"
        why = why or _check_old(row, storage_options)
        if why:
            result.refused[row["dest_uri"]] = why
            continue
        result.eligible.append(row["dest_uri"])
        if not yes:
            continue
        entry = {k: row[k] for k in ("dest_uri", "dest_sha256", "source_uri", "replacement_uri")}
        log.write([dict(entry, phase="intent")])
        fs, path = url_to_fs(row["dest_uri"], storage_options)
        fs.rm_file(path)
        log.write([dict(entry, phase="done")])
        result.pruned.append(row["dest_uri"])
    return result
