"""What SRC and DST *are*, not how they are spelled: resolved paths and bucket/key prefixes.

``same``, ``same/../same``, ``./same``, ``/abs/same``, ``file:///abs/same`` and a symlink to
``same`` are one local location; ``s3://b/x``, ``s3://b/x/`` and ``s3a://b/x`` are one S3
location.  A run whose DST equals SRC, lies inside it or contains it is refused before anything
is listed or written (docs/reliability.md, "SRC and DST").
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from fsspec.implementations.local import LocalFileSystem

from recodec.errors import LocationError, StorageError
from recodec.layout import state_path
from recodec.storage import atomic_write, list_sources, protocol_of, scrub, url_to_fs

#: Protocols that name one store (s3a is s3).
_ALIASES = {"s3a": "s3", "gcs": "gs", "abfss": "abfs", "local": "file"}


@dataclass(frozen=True)
class Location:
    """A storage location: protocol and canonical path (real path, or ``bucket/prefix``)."""

    protocol: str
    path: str

    def contains(self, other: "Location") -> bool:
        """True when ``other`` is this location or lies inside it."""
        if self.protocol != other.protocol:
            return False
        if self.path in ("", "/"):
            return True
        return other.path == self.path or other.path.startswith(self.path.rstrip("/") + "/")


def locate(url: str, storage_options: dict[str, Any] | None = None) -> Location:
    """The canonical location of ``url`` (local paths resolved through every symlink and ``..``)."""
    fs, path = url_to_fs(url, storage_options)
    if isinstance(fs, LocalFileSystem):
        return Location("file", os.path.realpath(os.path.abspath(path)))
    proto = protocol_of(fs)
    return Location(_ALIASES.get(proto, proto), path.strip("/"))


def _same_local(a: str, b: str) -> bool:
    """Whether two local paths are one directory (also on case-insensitive or bind-mounted file systems)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _local_inside(inner: str, outer: str) -> bool:
    """``inner`` (or an existing ancestor of it) is the directory ``outer``."""
    path = inner
    while True:
        if _same_local(path, outer):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


def check_src_dst(src: str, dst: str, storage_options: dict[str, Any] | None = None) -> None:
    """Refuse a DST that is SRC, lies inside SRC or contains SRC, however either is spelled."""
    s, d = locate(src, storage_options), locate(dst, storage_options)
    if s.protocol == "file" and d.protocol == "file":
        inside, contains = _local_inside(d.path, s.path), _local_inside(s.path, d.path)
        inside = inside or s.contains(d)
        contains = contains or d.contains(s)
    else:
        inside, contains = s.contains(d), d.contains(s)
    where = f"(SRC {src!r} is {s.protocol}:{s.path}, DST {dst!r} is {d.protocol}:{d.path})"
    if inside and contains:
        raise LocationError(f"DST is SRC {where}: recodec never writes over its sources")
    if inside:
        raise LocationError(f"DST lies inside SRC {where}: choose a DST outside the archive")
    if contains:
        raise LocationError(f"DST contains SRC {where}: outputs could overwrite sources")


def check_storage(config: Any) -> None:
    """Refuse overlapping SRC/DST, a missing or empty SRC and an unwritable DST, before any work."""
    opts = config.storage_options
    check_src_dst(config.src, config.dst, opts)
    src_fs, src_root = url_to_fs(config.src, opts)
    try:
        found = src_fs.isdir(src_root) if protocol_of(src_fs) == "file" else src_fs.exists(src_root)
    except OSError as exc:
        raise StorageError(scrub(f"cannot read SRC {config.src!r}: {exc}", opts)) from None
    if not found:
        raise LocationError(f"SRC {config.src!r} does not exist or holds no objects")
    if next(list_sources(src_fs, src_root, tuple(config.extensions)), None) is None:
        raise LocationError(f"no images under SRC {config.src!r} (extensions {', '.join(config.extensions)})")
    dst_fs, dst_root = url_to_fs(config.dst, opts)
    probe = state_path(dst_root, f".probe-{uuid.uuid4().hex[:12]}")
    try:
        atomic_write(dst_fs, probe, b"")
        dst_fs.rm_file(probe)
    except OSError as exc:
        raise StorageError(scrub(f"cannot write to DST {config.dst!r}: {type(exc).__name__}: {exc}", opts)) from None
