"""Which committed rows describe DST now, where their outputs are, and which of them collide.

Shared by audit and reconcile, so both judge an archive by the same rules:

* a row's output is found by its DST-relative ``dest_key`` joined to the DST being checked (a
  moved or copied DST checks itself, and a key is never re-parsed as a URL); rows older than
  ``dest_key`` fall back to their ``dest_uri``;
* the *current* rows are the newest row of each source (``source_uri``): every current row that
  has an output is checked, not only the newest row per output;
* two current rows of different sources pointing at one output are an ``output_collision``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from recodec.storage import UnsafeKeyError, full_url, join, url_to_fs

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def dest_path(row: dict[str, Any], fs: Any, root: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(filesystem, path)`` of a row's output under the DST at ``fs``/``root``."""
    if row.get("dest_key"):
        return fs, join(root, row["dest_key"])
    uri = row["dest_uri"]
    prefix = full_url(fs, root).rstrip("/") + "/"
    if uri.startswith(prefix):  # legacy row: its key is the part after this DST's root
        try:
            return fs, join(root, uri[len(prefix):])
        except UnsafeKeyError:
            pass
    return url_to_fs(uri, storage_options)


def current_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest row of each source, kept when it has an output (ok, or a verbatim copy)."""
    newest: dict[str, dict[str, Any]] = {}
    for r in rows:
        uri = r.get("source_uri") or ""
        prev = newest.get(uri)
        if prev is None or (r["created_at"] or _EPOCH) > (prev["created_at"] or _EPOCH):
            newest[uri] = r
    return [r for _, r in sorted(newest.items()) if r.get("dest_uri") or r.get("dest_key")]


def collisions(rows: Iterable[dict[str, Any]], fs: Any, root: str,
               storage_options: dict[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Outputs claimed by more than one current row: ``{path: [rows]}``."""
    by_path: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_path[dest_path(r, fs, root, storage_options)[1]].append(r)
    return {p: rs for p, rs in by_path.items() if len(rs) > 1}
