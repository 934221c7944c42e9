"""List SRC as a stream and cut it into shards; persist the plan under DST so re-runs reuse it.

The plan of job ``K`` lives in ``DST/_recodec/jobs/K/``::

    job.json            the public config and resolved codec params of the job
    plan/shard-<id>.json  one file per shard: [[key, size, etag, dest_key], ...]
    plan/_COMPLETE.json   written last: shard and image counts

A plan without ``_COMPLETE.json`` (the lister died) is rebuilt from scratch; the listing
is sorted, so the rebuilt shards are the same.  Shards are cut by image count and by
bytes, so one shard of huge scenes does not hold more than ``shard_bytes`` of sources.
"""

from __future__ import annotations

import itertools
import json
import math
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from recodec.errors import LocationError, UnsafeKeyError
from recodec.layout import job_info_path, plan_complete_path, plan_shard_path
from recodec.storage import SourceObject, atomic_write, list_sources, safe_key, url_to_fs
from recodec.tasks.naming import NameClaims, Naming, keeps_key, plan_names, possible_suffixes


@dataclass(frozen=True)
class PlanItem:
    """One source image of a shard and the key its output will get under DST."""

    key: str
    size: int
    etag: str
    dest_key: str
    #: The source key when this source may write under it (GeoTIFF kept, verbatim copy), "" when it
    #: may not (another source claimed the name), None in plans older than this field.
    keep_key: str | None = None


class PlanItemNames(NamedTuple):
    """The planned names of one source."""

    dest_key: str
    keep_key: str


@dataclass
class Shard:
    """A unit of work: a few images compressed by one actor and committed as one manifest part."""

    shard_id: int
    items: list[PlanItem] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        """Total source bytes of the shard."""
        return sum(i.size for i in self.items)


@dataclass(frozen=True)
class PlanSummary:
    """Counts of a persisted plan."""

    job_key: str
    shards: int
    images: int
    source_bytes: int
    reused: bool


def dest_key_for(key: str, extension: str, claims: NameClaims, naming: Naming | None = None) -> PlanItemNames:
    """``(dest_key, keep_key)`` of a source: unique across the job (see :mod:`recodec.tasks.naming`)."""
    naming = naming or Naming(extension, possible_suffixes([extension]))
    dest, keep = plan_names(key, extension, naming.suffixes or possible_suffixes([extension]), claims,
                            keep=keeps_key(key, geotiff_possible=naming.geotiff_possible,
                                           copy_unchanged=naming.copy_unchanged),
                            copy_unchanged=naming.copy_unchanged)
    return PlanItemNames(safe_key(dest), keep and safe_key(keep))


def cut_shards(sources: Iterator[SourceObject], naming: Naming | str, shard_size: int,
               shard_bytes: int, *, spread: int = 1) -> Iterator[Shard]:
    """Group a stream of sources into shards of at most ``shard_size`` images / ``shard_bytes`` bytes.

    A small job is spread over ``spread`` workers: when the whole listing fits in ``spread``
    shards, the shard size is ``ceil(n / spread)``, so every worker gets some of it.  Only the
    first ``spread * shard_size`` keys are held to decide; a larger listing streams as before.
    """
    head = list(itertools.islice(sources, max(1, spread) * shard_size + 1))
    if len(head) <= max(1, spread) * shard_size:  # the whole listing: small enough to spread
        shard_size = max(1, min(shard_size, math.ceil(len(head) / max(1, spread))))
    claims = NameClaims()
    try:
        yield from group_shards(named_items(itertools.chain(head, sources), naming, claims), 0,
                                shard_size, shard_bytes)
    finally:
        claims.close()


def named_items(sources: Iterable[SourceObject], naming: Naming | str, claims: NameClaims) -> Iterator[PlanItem]:
    """Plan items with collision-free output names (``claims`` holds every name taken so far)."""
    if isinstance(naming, str):
        naming = Naming(naming, possible_suffixes([naming]))
    for obj in sources:
        try:
            dest, keep = dest_key_for(obj.key, naming.extension, claims, naming)
        except UnsafeKeyError:
            dest, keep = "", ""  # planned like any source, so it gets its own failed row (unsafe_key)
        yield PlanItem(obj.key, obj.size, obj.etag, dest, keep)


def group_shards(items: Iterable[PlanItem], first_id: int, shard_size: int, shard_bytes: int) -> Iterator[Shard]:
    """Cut planned items into shards numbered from ``first_id``, bounded by count and bytes."""
    shard = Shard(first_id)
    for item in items:
        if shard.items and (len(shard.items) >= shard_size or shard.nbytes + item.size > shard_bytes):
            yield shard
            shard = Shard(shard.shard_id + 1)
        shard.items.append(item)
    if shard.items:
        yield shard


def iter_listing(src: str, dst: str, extensions: tuple[str, ...],
                 storage_options: dict[str, Any] | None = None) -> Iterator[SourceObject]:
    """Stream SRC's sources in listing order, leaving out DST's own files when DST lies inside SRC."""
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    src_fs, src_root = url_to_fs(src, storage_options)
    exclude = dst_root if type(dst_fs) is type(src_fs) else None
    return list_sources(src_fs, src_root, extensions, exclude_prefix=exclude)


def write_shard(dst_fs: Any, dst_root: str, job_key: str, shard: Shard) -> None:
    """Persist one planned shard."""
    rows = [[i.key, i.size, i.etag, i.dest_key, i.keep_key] for i in shard.items]
    atomic_write(dst_fs, plan_shard_path(dst_root, job_key, shard.shard_id), json.dumps(rows).encode())


def write_complete(dst_fs: Any, dst_root: str, job_key: str, shards: int, images: int, nbytes: int) -> None:
    """Mark the plan complete with its totals (written last; readers trust only the first ``shards``)."""
    atomic_write(dst_fs, plan_complete_path(dst_root, job_key), json.dumps(
        {"shards": shards, "images": images, "source_bytes": nbytes}).encode())


def plan_job(src: str, dst: str, job_key: str, *, extension: str | Naming, extensions: tuple[str, ...],
             shard_size: int, shard_bytes: int, job_info: dict[str, Any],
             storage_options: dict[str, Any] | None = None, spread: int = 1) -> PlanSummary:
    """Persist the shard plan of a job under DST, or reuse a complete one."""
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    complete = plan_complete_path(dst_root, job_key)
    if dst_fs.exists(complete):
        info = json.loads(dst_fs.cat_file(complete))
        return PlanSummary(job_key, info["shards"], info["images"], info["source_bytes"], reused=True)

    # Defence in depth (check_storage refuses DST inside SRC): iter_listing never lists DST's own files.
    listing = iter_listing(src, dst, extensions, storage_options)
    first = next(listing, None)
    if first is None:
        raise LocationError(f"no images under SRC {src!r} (extensions {', '.join(extensions)})")
    atomic_write(dst_fs, job_info_path(dst_root, job_key),
                 json.dumps(job_info, sort_keys=True, indent=2, default=str).encode())
    shards = images = nbytes = 0
    for shard in cut_shards(itertools.chain([first], listing), extension, shard_size, shard_bytes, spread=spread):
        write_shard(dst_fs, dst_root, job_key, shard)
        shards += 1
        images += len(shard.items)
        nbytes += shard.nbytes
    write_complete(dst_fs, dst_root, job_key, shards, images, nbytes)
    return PlanSummary(job_key, shards, images, nbytes, reused=False)


def load_shard(dst_fs: Any, dst_root: str, job_key: str, shard_id: int) -> Shard:
    """Read one persisted shard."""
    rows = json.loads(dst_fs.cat_file(plan_shard_path(dst_root, job_key, shard_id)))
    return Shard(shard_id, [PlanItem(*row) for row in rows])


def iter_shards(dst: str, job_key: str, n_shards: int,
                storage_options: dict[str, Any] | None = None) -> Iterator[Shard]:
    """Yield the persisted shards of a job one at a time (the driver never holds the whole plan)."""
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    for shard_id in range(n_shards):
        yield load_shard(dst_fs, dst_root, job_key, shard_id)


def copy_key(item: PlanItem) -> str:
    """DST key of a verbatim copy: the source key if the plan reserved it, else under the planned base."""
    if item.keep_key is None or item.keep_key:
        return item.keep_key or item.key
    return item.dest_key + posixpath.splitext(item.key)[1].lower()
