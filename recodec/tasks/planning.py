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

import json
import posixpath
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from recodec.manifest import state_path
from recodec.storage import SourceObject, UnsafeKeyError, atomic_write, list_sources, safe_key, url_to_fs


_FOLDER_LRU = 1024


@dataclass(frozen=True)
class PlanItem:
    """One source image of a shard and the key its output will get under DST."""

    key: str
    size: int
    etag: str
    dest_key: str


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


def dest_key_for(key: str, extension: str, taken: set[str]) -> str:
    """Output key: the source key with the codec's extension, kept unique within its folder.

    ``a.png`` and ``a.jpg`` in one folder would both become ``a.jxl``; the second one keeps its
    old suffix (``a.jpg.jxl``) so no two sources ever share an output.
    """
    stem, _ = posixpath.splitext(key)
    candidate = stem + extension
    if candidate in taken:
        candidate = key + extension
    taken.add(candidate)
    return safe_key(candidate)


def _plan_dir(dst_root: str, job_key: str) -> str:
    return state_path(dst_root, "jobs", job_key, "plan")


def _shard_path(dst_root: str, job_key: str, shard_id: int) -> str:
    return posixpath.join(_plan_dir(dst_root, job_key), f"shard-{shard_id:08d}.json")


def cut_shards(sources: Iterator[SourceObject], extension: str, shard_size: int,
               shard_bytes: int) -> Iterator[Shard]:
    """Group a stream of sources into shards of at most ``shard_size`` images / ``shard_bytes`` bytes."""
    shard = Shard(0)
    # Output names can only collide inside one folder, and in sorted order the keys of one folder
    # that share a stem are contiguous; a small LRU of folders keeps memory flat.
    folders: OrderedDict[str, set[str]] = OrderedDict()
    for obj in sources:
        parent = posixpath.dirname(obj.key)
        taken = folders.setdefault(parent, set())
        folders.move_to_end(parent)
        if len(folders) > _FOLDER_LRU:
            folders.popitem(last=False)
        try:
            dest = dest_key_for(obj.key, extension, taken)
        except UnsafeKeyError:
            dest = ""  # planned like any source, so it gets its own failed row (unsafe_key)
        item = PlanItem(obj.key, obj.size, obj.etag, dest)
        if shard.items and (len(shard.items) >= shard_size or shard.nbytes + item.size > shard_bytes):
            yield shard
            shard = Shard(shard.shard_id + 1)
        shard.items.append(item)
    if shard.items:
        yield shard


def plan_job(src: str, dst: str, job_key: str, *, extension: str, extensions: tuple[str, ...],
             shard_size: int, shard_bytes: int, job_info: dict[str, Any],
             storage_options: dict[str, Any] | None = None) -> PlanSummary:
    """Persist the shard plan of a job under DST, or reuse a complete one."""
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    complete = posixpath.join(_plan_dir(dst_root, job_key), "_COMPLETE.json")
    if dst_fs.exists(complete):
        info = json.loads(dst_fs.cat_file(complete))
        return PlanSummary(job_key, info["shards"], info["images"], info["source_bytes"], reused=True)

    src_fs, src_root = url_to_fs(src, storage_options)
    atomic_write(dst_fs, state_path(dst_root, "jobs", job_key, "job.json"),
                 json.dumps(job_info, sort_keys=True, indent=2, default=str).encode())
    # Keep DST's own files out of the listing when DST lives inside SRC.
    exclude = dst_root if type(dst_fs) is type(src_fs) else None
    shards = images = nbytes = 0
    for shard in cut_shards(list_sources(src_fs, src_root, extensions, exclude_prefix=exclude),
                            extension, shard_size, shard_bytes):
        rows = [[i.key, i.size, i.etag, i.dest_key] for i in shard.items]
        atomic_write(dst_fs, _shard_path(dst_root, job_key, shard.shard_id), json.dumps(rows).encode())
        shards += 1
        images += len(shard.items)
        nbytes += shard.nbytes
    atomic_write(dst_fs, complete, json.dumps(
        {"shards": shards, "images": images, "source_bytes": nbytes}).encode())
    return PlanSummary(job_key, shards, images, nbytes, reused=False)


def load_shard(dst_fs: Any, dst_root: str, job_key: str, shard_id: int) -> Shard:
    """Read one persisted shard."""
    rows = json.loads(dst_fs.cat_file(_shard_path(dst_root, job_key, shard_id)))
    return Shard(shard_id, [PlanItem(*row) for row in rows])


def iter_shards(dst: str, job_key: str, n_shards: int,
                storage_options: dict[str, Any] | None = None) -> Iterator[Shard]:
    """Yield the persisted shards of a job one at a time (the driver never holds the whole plan)."""
    dst_fs, dst_root = url_to_fs(dst, storage_options)
    for shard_id in range(n_shards):
        yield load_shard(dst_fs, dst_root, job_key, shard_id)
