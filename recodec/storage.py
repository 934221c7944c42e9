"""Object-storage helpers over fsspec: URLs, safe keys, listing and atomic writes.

Every read and write in recodec goes through here, so the rules that keep an
archive safe live in one place:

* a destination key is derived from a source key only through :func:`safe_key`,
  which refuses anything that could escape the destination root;
* :func:`atomic_write` never shows a partial object under its final name:
  on object stores a single PUT (or a completed multipart upload) is atomic;
  on POSIX we write a temporary sibling, fsync it and ``os.replace`` it;
* sources are only ever opened for reading.
"""

from __future__ import annotations

import ctypes
import os
import posixpath
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from recodec.errors import UnsafeKeyError, WriteRevoked
from recodec.layout import is_state_name

# Object stores whose single PUT is atomic: a reader sees the old object, the new one or none.
_ATOMIC_PUT_PROTOCOLS = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_KEYS = re.compile(r"(secret|token|password|key|credential)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceObject:
    """One listed source: its key relative to SRC, size and a version pin (ETag or mtime)."""

    key: str
    size: int
    etag: str


#: botocore retries throttling (SlowDown, 503), 5xx and connection resets with backoff.
S3_RETRIES = {"retries": {"max_attempts": 10, "mode": "adaptive"}}


def with_defaults(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Storage options plus recodec's defaults (S3 retry policy) unless the user set them."""
    opts = dict(storage_options or {})
    if url.startswith(("s3://", "s3a://")):
        config = dict(opts.get("config_kwargs") or {})
        config.setdefault("retries", S3_RETRIES["retries"])
        opts["config_kwargs"] = config
    return opts


def url_to_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """Filesystem and protocol-less root path for ``url`` (local path, file://, s3://...).

    Only a *root* (SRC, DST, a file the user names) goes through URL parsing; object keys
    are joined to the root afterwards (:func:`join`) and never parsed as URLs.  On S3 the
    filesystem is :func:`key_safe_s3`, so ``?versionId=`` inside a key stays part of the key.
    """
    opts = with_defaults(url, storage_options)
    if url.startswith(("s3://", "s3a://")) and "::" not in url:
        fs = key_safe_s3()(**opts)
        path = fs._strip_protocol(url)
    else:
        fs, path = fsspec.core.url_to_fs(url, **opts)
    return fs, path.rstrip("/") if path not in ("/", "") else path


_KEY_SAFE_S3: type | None = None


def key_safe_s3() -> type:
    """An s3fs filesystem class whose paths are literal ``bucket/key`` strings.

    s3fs cuts a path at ``?versionId=`` (and drops the version unless version-aware), so a key
    such as ``a?versionId=x.png`` would be read, written and stat-ed as ``a``.  recodec never
    addresses object versions by path, so this subclass keeps the whole key.
    """
    global _KEY_SAFE_S3
    if _KEY_SAFE_S3 is None:
        from s3fs import S3FileSystem

        class KeySafeS3FileSystem(S3FileSystem):  # type: ignore[misc]
            """S3FileSystem without version-id parsing in paths (keys are keys)."""

            def split_path(self, path: str) -> tuple[str, str, None]:
                trail = path[len(path.rstrip("/")):]
                path = self._strip_protocol(path).lstrip("/")
                if "/" not in path:
                    return path, "", None
                bucket, key = self._find_bucket_key(path)
                return bucket, key + trail, None

        _KEY_SAFE_S3 = KeySafeS3FileSystem
    return _KEY_SAFE_S3


def protocol_of(fs: fsspec.AbstractFileSystem) -> str:
    """The main protocol name of a filesystem ("file", "s3", ...)."""
    proto = fs.protocol
    return proto[0] if isinstance(proto, (tuple, list)) else proto


def full_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """A URL for ``path`` that fsspec can open again (``s3://bucket/key`` or ``/local/path``)."""
    if isinstance(fs, LocalFileSystem):
        return path
    return fs.unstrip_protocol(path)


def safe_key(key: str) -> str:
    """Validate a relative key; raise :class:`UnsafeKeyError` for traversal, absolute or odd keys."""
    if not key or _CONTROL.search(key) or "\\" in key:
        raise UnsafeKeyError(f"refusing key {key!r}: empty, control character or backslash")
    # A drive root ("C:" or "C:/..."); "a::b.png" or "a:b.png" are ordinary POSIX and S3 names.
    if key.startswith("/") or re.match(r"^[A-Za-z]:(/|$)", key):
        raise UnsafeKeyError(f"refusing absolute key {key!r}")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise UnsafeKeyError(f"refusing key {key!r}: empty, '.' or '..' segment")
    return key


def join(root: str, key: str) -> str:
    """Join a root path and a validated relative key."""
    return posixpath.join(root, safe_key(key)) if root else safe_key(key)


def etag_of(info: dict[str, Any]) -> str:
    """A version pin from an fsspec ``info`` dict: the ETag on object stores, else mtime + size."""
    for name in ("ETag", "etag", "md5Hash", "content_md5"):
        if info.get(name):
            return str(info[name]).strip('"')
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created") or ""
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return f"mtime:{mtime}:size:{info.get('size')}"


def list_sources(
    fs: fsspec.AbstractFileSystem, root: str, extensions: tuple[str, ...], *, exclude_prefix: str | None = None
) -> Iterator[SourceObject]:
    """Yield source objects under ``root`` whose names end with one of ``extensions``.

    Streams directory by directory (``fs.walk``) in sorted order, so a listing of millions of
    keys never sits in memory at once and two listings of the same tree give the same order.
    """
    exts = tuple(e.lower() for e in extensions)
    root = root.rstrip("/")
    if hasattr(fs, "_iterdir") and protocol_of(fs) in {"s3", "s3a"}:
        yield from _list_flat(fs, root, exts, exclude_prefix)
        return
    for dirpath, dirs, files in fs.walk(root, detail=True):
        dirs_sorted = sorted(dirs)
        # walk() honours in-place edits of `dirs`, so pruning and ordering happen here.
        if isinstance(dirs, dict):
            kept = {d: dirs[d] for d in dirs_sorted if not is_state_name(d)}
            dirs.clear()
            dirs.update(kept)
        else:
            dirs[:] = [d for d in dirs_sorted if not is_state_name(d)]
        items = files.items() if isinstance(files, dict) else ((f, fs.info(posixpath.join(dirpath, f))) for f in files)
        for name, info in sorted(items, key=lambda kv: kv[0]):
            if not name.lower().endswith(exts):
                continue
            path = posixpath.join(dirpath, name)
            # Plain prefix stripping, not relpath: relpath would normalise "a/../x" away and hide
            # a hostile key; the raw key is kept so that safe_key() can refuse it later.
            rel = path[len(root) + 1:] if root and path.startswith(root + "/") else path
            if exclude_prefix and (path + "/").startswith(exclude_prefix.rstrip("/") + "/"):
                continue
            yield SourceObject(key=rel, size=int(info.get("size") or 0), etag=etag_of(info))


def _list_flat(fs: Any, root: str, exts: tuple[str, ...], exclude_prefix: str | None) -> Iterator[SourceObject]:
    """List an S3 prefix page by page without a delimiter.

    A '/'-delimited walk silently loses keys with an empty segment (``archive//x.png``), which
    would then get no row at all; a flat listing sees every key, in S3's lexicographic order.
    """
    import fsspec.asyn

    bucket, _, prefix = root.partition("/")
    pages = fs._iterdir(bucket, delimiter="", prefix=f"{prefix}/" if prefix else "")
    excluded = exclude_prefix.rstrip("/") + "/" if exclude_prefix else None
    while True:
        try:
            info = fsspec.asyn.sync(fs.loop, pages.__anext__)
        except StopAsyncIteration:
            return
        path = info["name"]
        rel = path[len(root) + 1:]
        if info.get("type") != "file" or not rel.lower().endswith(exts):
            continue
        if any(is_state_name(part) for part in rel.split("/")[:-1]):
            continue
        if excluded and (path + "/").startswith(excluded):
            continue
        yield SourceObject(key=rel, size=int(info.get("size") or 0), etag=etag_of(info))


class WriteGate:
    """Write-then-commit ownership of outputs between an image thread and its supervisor.

    The writer publishes through :func:`atomic_write` with this gate; the supervisor may
    :meth:`revoke` it at any time (a timeout).  Publishing and revoking take one lock, so either
    the output is published before the revoke (and the revoke reports it, to be removed) or it is
    never published under its final name (locally: the temporary file is dropped; on object
    stores, whose single PUT cannot be split, the writer removes the object it just put).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked = False
        self.published: list[str] = []

    def publish(self, path: str, promote: Any, undo: Any) -> None:
        """Run ``promote()`` unless revoked; after a revoke, run ``undo()`` and raise."""
        with self._lock:
            if not self._revoked:
                promote()
                self.published.append(path)
                return
            undo()
        raise WriteRevoked(f"gave up waiting; {posixpath.basename(path)!r} not published")

    def revoke(self) -> list[str]:
        """Forbid further publishing; return what was already published (the caller removes it)."""
        with self._lock:
            self._revoked = True
            return list(self.published)


def _tmp_name(path: str) -> str:
    # At most 222 bytes whatever the name, so a name of up to 255 bytes stays writable; the name's
    # first 200 bytes say whose leftover a temporary file is: ".<name[:200]>.<16 hex>.tmp".
    base = posixpath.basename(path).encode()[:200].decode(errors="ignore")
    return posixpath.join(posixpath.dirname(path), f".{base}.{uuid.uuid4().hex[:16]}.tmp")


def atomic_write(fs: fsspec.AbstractFileSystem, path: str, data: bytes, *, durable: bool = True,
                 gate: WriteGate | None = None) -> None:
    """Write ``data`` to ``path`` so that no partial object is ever visible under ``path``.

    ``durable=False`` skips the per-file fsync on local disks; the caller must then call
    :func:`flush` before recording the file anywhere (the compress step does, once per shard).
    With a ``gate``, the object appears under ``path`` only if the gate was not revoked.
    """
    parent = posixpath.dirname(path)
    if isinstance(fs, LocalFileSystem):
        os.makedirs(parent, exist_ok=True)
        tmp = _tmp_name(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())
            if gate is None:
                os.replace(tmp, path)
            else:
                gate.publish(path, lambda: os.replace(tmp, path), lambda: None)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return
    if protocol_of(fs) in _ATOMIC_PUT_PROTOCOLS:
        fs.pipe_file(path, data)
        if gate is not None:
            gate.publish(path, lambda: None, lambda: _rm_quietly(fs, path))
        return
    # Other filesystems: temporary sibling, then rename (atomic where the backend's mv is).
    tmp = _tmp_name(path)
    try:
        fs.pipe_file(tmp, data)
        if gate is None:
            fs.mv(tmp, path)
        else:
            gate.publish(path, lambda: fs.mv(tmp, path), lambda: None)
    except BaseException:
        _rm_quietly(fs, tmp)
        raise


def _rm_quietly(fs: fsspec.AbstractFileSystem, path: str) -> None:
    try:
        fs.rm_file(path)
    except Exception:
        pass


def create_exclusive(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> bool:
    """Create ``path`` holding ``data`` only if nothing exists there; False if something does.

    Locally: ``O_CREAT | O_EXCL`` on a temporary file's hard link (so the content appears whole);
    on S3: a PUT with ``If-None-Match: *`` (conditional write).  Other object stores fall back to
    check-then-put, which is not atomic (docs/reliability.md).
    """
    if isinstance(fs, LocalFileSystem):
        os.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = _tmp_name(path)
        with open(tmp, "wb") as fh:
            fh.write(data)
        try:
            os.link(tmp, path)  # fails with EEXIST, atomically, when path exists
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    if protocol_of(fs) in {"s3", "s3a"}:
        try:
            fs.pipe_file(path, data, IfNoneMatch="*")
            return True
        except FileExistsError:
            return False
    if fs.exists(path):
        return False
    fs.pipe_file(path, data)
    return True


def flush(fs: fsspec.AbstractFileSystem, root: str, paths: list[str] | None = None) -> None:
    """Make writes under ``root`` durable (local disks; object stores are durable on PUT).

    One ``syncfs`` per shard costs ~0.1 ms per output where an fsync per file costs 3-7 ms
    (measured on ext4, 30 kB outputs); it runs before the shard's manifest part is written,
    so no committed row ever points at an output that a power cut could lose.  Where
    ``syncfs`` is missing, each of ``paths`` is fsynced instead.  Raises ``OSError`` when the
    kernel reports a write-back error.
    """
    if not isinstance(fs, LocalFileSystem) or not os.path.isdir(root):
        return
    if _LIBC is not None:
        fd = os.open(root, os.O_RDONLY)
        try:
            if _LIBC.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs failed: {os.strerror(err)}")
        finally:
            os.close(fd)
        return
    for path in paths or ():
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _libc() -> Any:
    try:
        lib = ctypes.CDLL(None, use_errno=True)
        return lib if hasattr(lib, "syncfs") else None
    except OSError:
        return None


_LIBC = _libc()


def move(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> None:
    """Promote ``src`` to ``dst`` atomically (rename locally, server-side copy on object stores)."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(posixpath.dirname(dst), exist_ok=True)
        os.replace(src, dst)
        return
    fs.copy(src, dst)  # a server-side copy makes the whole object appear at once
    fs.rm_file(src)


def move_if_absent(fs: fsspec.AbstractFileSystem, src: str, dst: str) -> bool:
    """Promote ``src`` to ``dst`` only if ``dst`` does not exist; False (``src`` kept) if it does."""
    if isinstance(fs, LocalFileSystem):
        os.makedirs(posixpath.dirname(dst), exist_ok=True)
        try:
            os.link(src, dst)  # atomic create-if-absent, whole content at once
        except FileExistsError:
            return False
        os.unlink(src)
        return True
    if not create_exclusive(fs, dst, fs.cat_file(src)):
        return False
    fs.rm_file(src)
    return True


def redact(options: dict[str, Any] | None) -> dict[str, Any]:
    """Storage options with every credential-looking value replaced, for logs and errors."""
    out: dict[str, Any] = {}
    for k, v in (options or {}).items():
        if isinstance(v, dict):
            out[k] = redact(v)
        elif _SECRET_KEYS.search(k) and k not in {"endpoint_url"}:
            out[k] = "***"
        else:
            out[k] = v
    return out


def scrub(message: str, options: dict[str, Any] | None) -> str:
    """Remove any credential value in ``options`` from ``message`` (for manifest error columns)."""
    for k, v in _flatten(options or {}):
        if isinstance(v, str) and len(v) >= 4 and _SECRET_KEYS.search(k) and k != "endpoint_url":
            message = message.replace(v, "***")
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        val = os.environ.get(name)
        if val and len(val) >= 4:
            message = message.replace(val, "***")
    return message


def _flatten(d: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v)
        else:
            yield k, v
