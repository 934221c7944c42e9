"""The retirement log: every retire action, written under DST before it is taken.

``DST/_recodec/retire/<retire_id>/part-<seq>.parquet``; one row per action and phase:

* ``intent``   about to delete (or move to trash) this source, pinned at this version;
* ``done``     the source is gone (deleted, or moved to ``trash_uri``);
* ``refused``  a condition failed at the last moment (changed source, precondition failed...);
* ``error``    the storage call failed; the source is still there.

A source is *retired* when its newest phase is ``done``.  An ``intent`` with no later phase is an
interrupted action: a re-run checks the source again and completes or refuses it.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from typing import Any

import pyarrow as pa

from recodec.layout import action_part_path
from recodec.manifest import PartSink, read_parts, to_table

RETIRE_SCHEMA = pa.schema([
    ("schema_version", pa.int16()),
    ("retire_id", pa.string()),
    ("source_uri", pa.string()),
    ("source_etag", pa.string()),
    ("source_bytes", pa.int64()),
    ("source_sha256", pa.string()),
    ("row_run_id", pa.string()),
    ("job_key", pa.string()),
    ("dest_uri", pa.string()),
    ("check_id", pa.string()),
    ("action", pa.string()),
    ("trash_uri", pa.string()),
    ("phase", pa.string()),
    ("detail", pa.string()),
    ("logged_at", pa.timestamp("us", tz="UTC")),
])
PHASES = ("intent", "done", "refused", "error")


class ActionLog:
    """Append-only writer of one invocation's log parts (each part committed atomically)."""

    def __init__(self, dst: str, action_id: str, storage_options: dict[str, Any] | None = None, *,
                 kind: str = "retire", schema: pa.Schema = RETIRE_SCHEMA, id_column: str = "retire_id") -> None:
        self.sink = PartSink(dst, storage_options)
        self.action_id, self.kind, self.schema, self.id_column = action_id, kind, schema, id_column
        self.seq = 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Commit ``rows`` as the next part; returns only once they are durable."""
        if not rows:
            return
        now = dt.datetime.now(dt.timezone.utc)
        for r in rows:
            r.setdefault("schema_version", 1)
            r.setdefault(self.id_column, self.action_id)
            r.setdefault("logged_at", now)
        self.sink.write_part(to_table(rows, self.schema),
                             action_part_path(self.sink.root, self.kind, self.action_id, self.seq))
        self.seq += 1



def read_log(dst: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """Every committed row of the retirement log."""
    return read_parts(dst, "retire", RETIRE_SCHEMA, storage_options)


def newest_phase(dst: str, storage_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The newest log row per source URI."""
    out: dict[str, dict[str, Any]] = {}
    for r in read_log(dst, storage_options).to_pylist():
        prev = out.get(r["source_uri"])
        if prev is None or (r["logged_at"], PHASES.index(r["phase"])) >= (prev["logged_at"], PHASES.index(prev["phase"])):
            out[r["source_uri"]] = r
    return out


def retired_pins(dst: str, storage_options: dict[str, Any] | None = None) -> dict[str, str]:
    """Source URI -> pinned ETag of every source retired from DST's archive (newest phase ``done``)."""
    return {uri: r["source_etag"] for uri, r in newest_phase(dst, storage_options).items() if r["phase"] == "done"}


def trash_uri_for(trash: str, source_key: str) -> str:
    """Where a source goes under ``--trash`` (its key kept, so a restore is one copy)."""
    return posixpath.join(trash.rstrip("/"), source_key)
