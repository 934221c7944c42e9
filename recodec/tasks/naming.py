"""Output names: one collision-free plan across a whole job (docs/reliability.md, "Output names").

Policy:

* every output of a source lives in its folder under one *base* name ``B``: ``B`` itself, or
  ``B`` plus one of the job's possible suffixes (codec extensions, ``.tif`` for GeoTIFF,
  ``.rcbp`` for band packs, the source's own extension for a copy);
* a GeoTIFF re-written as a GeoTIFF, and a verbatim copy (``--copy-unchanged``), *keep* the
  source key, when no earlier source of the listing claimed that name;
* the first source in listing order gets the natural base (``a.png`` -> ``a.jxl``); a later one
  whose names would meet a claimed name gets its full key (``a.jpg`` -> ``a.jpg.jxl``), then
  ``a.jpg~1.jxl``, ``a.jpg~2.jxl``...;
* names are compared case-folded, so the plan is the same, and safe, on case-insensitive file
  systems (macOS, Windows, SMB), whatever DST is.

Every possible name of every source is claimed at planning, so no two sources can ever share an
output, whichever codec or container each image ends up with.  Claims are kept per folder in
memory; folders not used for a while spill to a temporary SQLite file, so memory stays flat on
listings of any size.
"""

from __future__ import annotations

import itertools
import os
import posixpath
import sqlite3
import tempfile
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from recodec.formats.bandpack import BANDPACK_SUFFIX

_IN_MEMORY_FOLDERS = 1024


@dataclass(frozen=True)
class Naming:
    """What the plan needs to claim every name a source could be written under."""

    extension: str
    suffixes: tuple[str, ...] = ()
    geotiff_possible: bool = True
    copy_unchanged: bool = False


def job_naming(job: Any) -> Naming:
    """Every name a source of ``job`` could be written under: each candidate's extension, GeoTIFF."""
    from recodec.codecs import get_codec
    from recodec.container import output_extension

    exts = [job.plan_extension] + [output_extension(get_codec(name), "raw") for name in job.params]
    if job.container != "raw":
        exts.append(output_extension(None, "geotiff"))
    return Naming(job.plan_extension, possible_suffixes(exts), geotiff_possible=job.container != "raw",
                  copy_unchanged=job.config.copy_unchanged)


class NameClaims:
    """Case-folded names claimed so far, per folder, with spill-over to disk."""

    def __init__(self, folders_in_memory: int = _IN_MEMORY_FOLDERS) -> None:
        self._hot: OrderedDict[str, set[str]] = OrderedDict()
        self._limit = folders_in_memory
        self._db: sqlite3.Connection | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def folder(self, name: str) -> set[str]:
        """The claimed names of one folder (loaded back from disk if it was spilled)."""
        claims = self._hot.get(name)
        if claims is None:
            claims = self._load(name)
            self._hot[name] = claims
            if len(self._hot) > self._limit:
                self._spill(*self._hot.popitem(last=False))
        self._hot.move_to_end(name)
        return claims

    def _database(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = tempfile.TemporaryDirectory(prefix="recodec-names-")
            self._db = sqlite3.connect(os.path.join(self._dir.name, "claims.db"))
            self._db.execute("CREATE TABLE claims (folder TEXT, name TEXT, PRIMARY KEY (folder, name))")
        return self._db

    def _spill(self, folder: str, names: set[str]) -> None:
        db = self._database()
        db.execute("DELETE FROM claims WHERE folder = ?", (folder,))
        db.executemany("INSERT INTO claims VALUES (?, ?)", ((folder, n) for n in names))

    def _load(self, folder: str) -> set[str]:
        if self._db is None:
            return set()
        rows = self._db.execute("SELECT name FROM claims WHERE folder = ?", (folder,))
        return {r[0] for r in rows}

    def close(self) -> None:
        """Drop the spill file."""
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


def possible_suffixes(extensions: Iterable[str]) -> tuple[str, ...]:
    """Every suffix an output base can get: each extension, with and without the band-pack suffix."""
    out = {"", BANDPACK_SUFFIX}
    for ext in extensions:
        out.update({ext, ext + BANDPACK_SUFFIX})
    return tuple(sorted(out))


def keeps_key(key: str, *, geotiff_possible: bool, copy_unchanged: bool) -> bool:
    """Whether a source may be written under its own key (GeoTIFF kept as GeoTIFF, or a verbatim copy)."""
    return copy_unchanged or (geotiff_possible and key.lower().endswith((".tif", ".tiff")))


def plan_names(key: str, extension: str, suffixes: tuple[str, ...], claims: NameClaims, *,
               keep: bool, copy_unchanged: bool) -> tuple[str, str]:
    """``(dest_key, keep_key)`` for one source, claiming every name it could write.

    ``keep_key`` is the source key when the source may keep it and no earlier source claimed
    it, else "" (its GeoTIFF or copy then goes under ``dest_key`` too).
    """
    folder, name = posixpath.split(key)
    taken = claims.folder(folder)
    own_ext = posixpath.splitext(name)[1].lower()
    mine = suffixes + ((own_ext,) if copy_unchanged and own_ext else ())
    stem = posixpath.splitext(name)[0]
    candidates = [stem + extension, name + extension]
    for i in itertools.count():
        base = candidates[i] if i < len(candidates) else f"{name}~{i - len(candidates) + 1}{extension}"
        names = {(base + s).casefold() for s in mine}
        if not names & taken:
            break
    keep_key = ""
    # Its own base may hold its own key (one source writes one output): only others' claims count.
    if keep and name.casefold() not in taken:
        keep_key = key
        taken.add(name.casefold())
    taken.update(names)
    return (posixpath.join(folder, base) if folder else base), keep_key
