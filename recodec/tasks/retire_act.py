"""The one storage action of retire: delete (or move to trash) a source only if it is the pinned version.

Per store, the check sits as close to the deletion as the store allows:

* S3: ``DeleteObject`` with ``If-Match: <pinned ETag>``; the store refuses (412) if the object
  changed.  ``--trash`` copies first with ``CopySourceIfMatch`` and checks the copy's size and ETag.
  A store that does not implement conditional deletes (501 / NotImplemented) gets an immediate
  re-check (HEAD) before an unconditional delete, and the log says so.
* local disks: the source is claimed by an atomic rename to a hidden sibling, so no writer can
  reach it under its name any more; the claimed file's mtime+size and SHA-256 are checked, then
  it is unlinked (or moved to trash) or renamed back.
* other fsspec stores: an immediate re-check of the pin, then delete.

Every function returns ``(phase, detail)`` with phase ``done``, ``refused`` or ``error``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any

from recodec.digest import sha256_hex
from recodec.storage import etag_of, protocol_of, url_to_fs

Outcome = tuple[str, str]


def act(fs: Any, path: str, row: dict[str, Any], trash_uri: str | None, sha: str | None,
        storage_options: dict[str, Any] | None) -> Outcome:
    """Delete or trash one source if, at this moment, it is still the pinned version."""
    try:
        proto = protocol_of(fs)
        if proto == "file":
            return _local(path, row, trash_uri, sha, storage_options)
        if proto in {"s3", "s3a"}:
            return _s3(fs, path, row, trash_uri, storage_options)
        return _generic(fs, path, row, trash_uri, storage_options)
    except Exception as exc:  # the log must say what happened to every intent
        return "error", f"{type(exc).__name__}: {exc}"[:500]


_CLAIM = ".recodec-retire-"


def local_claim_path(path: str) -> str:
    """A hidden sibling name that takes a local source out of everyone's way before it is checked."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}{_CLAIM}{uuid.uuid4().hex[:8]}")


def finish_interrupted(path: str, trash_uri: str | None, sha: str | None,
                       storage_options: dict[str, Any] | None) -> Outcome:
    """Complete a local retire that died after claiming the source (its claimed copy is still there)."""
    folder, name = os.path.split(path)
    claims = [os.path.join(folder, f) for f in os.listdir(folder) if f.startswith(f".{name}{_CLAIM}")] \
        if os.path.isdir(folder) else []
    for claim in claims:
        with open(claim, "rb") as fh:
            same = sha256_hex(fh.read()) == sha
        if not same:  # the claim caught a changed source and died before putting it back
            os.rename(claim, path)
            return "refused", "source_changed: restored a changed source claimed by an interrupted retire"
        return _dispose(claim, trash_uri, storage_options)
    return "done", "completed by a re-run after an interruption"


def _local(path: str, row: dict[str, Any], trash_uri: str | None, sha: str | None,
           storage_options: dict[str, Any] | None) -> Outcome:
    claim = local_claim_path(path)
    try:
        os.rename(path, claim)
    except FileNotFoundError:
        return "refused", "source_changed: source no longer exists"
    fs, _ = url_to_fs(claim)
    with open(claim, "rb") as fh:
        digest = sha256_hex(fh.read())
    if etag_of(fs.info(claim)) != row["source_etag"] or digest != sha:
        os.rename(claim, path)  # not ours to delete: put it back untouched
        return "refused", "source_changed: changed between the check and the deletion"
    return _dispose(claim, trash_uri, storage_options)


def _dispose(claim: str, trash_uri: str | None, storage_options: dict[str, Any] | None) -> Outcome:
    if trash_uri is None:
        os.unlink(claim)
        return "done", "deleted"
    tfs, tpath = url_to_fs(trash_uri, storage_options)
    if protocol_of(tfs) == "file":
        os.makedirs(os.path.dirname(tpath), exist_ok=True)
        shutil.move(claim, tpath)
    else:
        tfs.put_file(claim, tpath)
        os.unlink(claim)
    return "done", f"moved to {trash_uri}"


def _client_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _s3(fs: Any, path: str, row: dict[str, Any], trash_uri: str | None,
        storage_options: dict[str, Any] | None) -> Outcome:
    from botocore.exceptions import ClientError
    from fsspec.asyn import sync

    client = sync(fs.loop, fs.set_session)
    bucket, key, _ = fs.split_path(path)
    pin = f'"{row["source_etag"]}"'
    trash_loc = None
    if trash_uri is not None:
        tfs, tpath = url_to_fs(trash_uri, storage_options)
        if protocol_of(tfs) not in {"s3", "s3a"}:
            return "error", "an S3 source needs an S3 --trash (a server-side copy)"
        trash_loc = tfs.split_path(tpath)[:2]
        try:
            sync(fs.loop, client.copy_object, Bucket=trash_loc[0], Key=trash_loc[1],
                 CopySource={"Bucket": bucket, "Key": key}, CopySourceIfMatch=pin)
        except ClientError as exc:
            if _client_error_code(exc) in {"PreconditionFailed", "412"}:
                return "refused", "source_changed: copy precondition failed"
            raise
        head = sync(fs.loop, client.head_object, Bucket=trash_loc[0], Key=trash_loc[1])
        same = head["ContentLength"] == row["source_bytes"] and (
            head["ETag"].strip('"') == row["source_etag"] or "-" in row["source_etag"])
        if not same:
            sync(fs.loop, client.delete_object, Bucket=trash_loc[0], Key=trash_loc[1])
            return "refused", "source_changed: the trash copy is not the pinned version"
    try:
        sync(fs.loop, client.delete_object, Bucket=bucket, Key=key, IfMatch=pin)
        detail = "deleted with If-Match"
    except ClientError as exc:
        code = _client_error_code(exc)
        if code in {"PreconditionFailed", "412", "NoSuchKey", "404"}:
            if trash_loc:
                sync(fs.loop, client.delete_object, Bucket=trash_loc[0], Key=trash_loc[1])
            return "refused", f"source_changed: conditional delete refused ({code})"
        if code not in {"NotImplemented", "501"}:
            raise
        head = sync(fs.loop, client.head_object, Bucket=bucket, Key=key)
        if head["ETag"] != pin:
            return "refused", "source_changed: re-checked before delete"
        sync(fs.loop, client.delete_object, Bucket=bucket, Key=key)
        detail = "deleted after an immediate re-check (store has no conditional delete)"
    fs.invalidate_cache(path)
    return "done", detail if trash_uri is None else f"moved to {trash_uri}; {detail}"


def _generic(fs: Any, path: str, row: dict[str, Any], trash_uri: str | None,
             storage_options: dict[str, Any] | None) -> Outcome:
    fs.invalidate_cache(path)
    if etag_of(fs.info(path)) != row["source_etag"]:
        return "refused", "source_changed: re-checked before delete"
    if trash_uri is not None:
        tfs, tpath = url_to_fs(trash_uri, storage_options)
        tfs.pipe_file(tpath, fs.cat_file(path))
    fs.rm_file(path)
    return "done", "deleted after an immediate re-check"
