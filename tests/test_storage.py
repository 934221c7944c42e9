"""Tests of recodec.storage: safe keys, listing, atomic writes, redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recodec.storage import (
    UnsafeKeyError,
    atomic_write,
    etag_of,
    join,
    list_sources,
    redact,
    safe_key,
    scrub,
    url_to_fs,
)


@pytest.mark.parametrize("key", ["../x.tif", "a/../../x.tif", "/etc/passwd", "a\\b.tif", "a/\x00.tif",
                                 "a//b.tif", "./a.tif", "C:/x.tif", "", "a/\n.png", "a/./b.png"])
def test_safe_key_rejects_escapes(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        safe_key(key)


def test_join_keeps_keys_under_root() -> None:
    assert join("/dst", "a/b.tif") == "/dst/a/b.tif"
    with pytest.raises(UnsafeKeyError):
        join("/dst", "../outside.tif")


def test_list_sources_sorted_filtered_and_prunes_state(tmp_path: Path) -> None:
    for rel in ["b/2.png", "b/1.TIF", "a/x.jpg", "a/notes.txt", "_recodec/jobs/p.png", "c.png"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * 3)
    fs, root = url_to_fs(str(tmp_path))
    keys = [o.key for o in list_sources(fs, root, (".png", ".tif", ".jpg"))]
    assert keys == ["c.png", "a/x.jpg", "b/1.TIF", "b/2.png"]  # files of a folder, then sorted subfolders
    assert keys == [o.key for o in list_sources(fs, root, (".png", ".tif", ".jpg"))]  # deterministic


def test_list_sources_excludes_dst_inside_src(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "o.png").write_bytes(b"1")
    (tmp_path / "i.png").write_bytes(b"1")
    fs, root = url_to_fs(str(tmp_path))
    keys = [o.key for o in list_sources(fs, root, (".png",), exclude_prefix=str(tmp_path / "out"))]
    assert keys == ["i.png"]


def test_atomic_write_local_leaves_no_temp_and_replaces(tmp_path: Path) -> None:
    fs, root = url_to_fs(str(tmp_path))
    atomic_write(fs, f"{root}/d/f.bin", b"one")
    atomic_write(fs, f"{root}/d/f.bin", b"two")
    assert (tmp_path / "d" / "f.bin").read_bytes() == b"two"
    assert os.listdir(tmp_path / "d") == ["f.bin"]


def test_atomic_write_failure_keeps_old_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs, root = url_to_fs(str(tmp_path))
    atomic_write(fs, f"{root}/f.bin", b"old")

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(fs, f"{root}/f.bin", b"new-partial")
    assert (tmp_path / "f.bin").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_atomic_write_s3(s3_bucket: str, s3_options: dict) -> None:
    fs, root = url_to_fs(s3_bucket, s3_options)
    atomic_write(fs, f"{root}/k/f.bin", b"abc")
    assert fs.cat_file(f"{root}/k/f.bin") == b"abc"
    assert etag_of(fs.info(f"{root}/k/f.bin"))


def test_etag_of_local_changes_with_content(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"1")
    fs, root = url_to_fs(str(tmp_path))
    a = etag_of(fs.info(str(p)))
    os.utime(p, ns=(1, 1))
    assert etag_of(fs.info(str(p))) != a


def test_redact_and_scrub_hide_secrets() -> None:
    opts = {"key": "AKIAEXAMPLE", "secret": "s3cr3tvalue", "client_kwargs": {"endpoint_url": "http://h"}}
    red = redact(opts)
    assert red["secret"] == "***" and red["key"] == "***"
    assert red["client_kwargs"]["endpoint_url"] == "http://h"
    assert "s3cr3tvalue" not in scrub("failed with s3cr3tvalue", opts)


def test_create_exclusive_is_create_if_absent_locally_and_on_s3(tmp_path, s3_bucket, s3_options) -> None:
    from recodec.storage import create_exclusive, move_if_absent, url_to_fs

    for root in (str(tmp_path), s3_bucket):
        fs, base = url_to_fs(root, s3_options if root.startswith("s3") else None)
        path = f"{base}/leases/one.json"
        assert create_exclusive(fs, path, b"first")
        assert not create_exclusive(fs, path, b"second")
        assert fs.cat_file(path) == b"first"
        fs.pipe_file(f"{base}/staged", b"part")
        assert not move_if_absent(fs, f"{base}/staged", path)
        assert fs.cat_file(path) == b"first" and fs.exists(f"{base}/staged")
        assert move_if_absent(fs, f"{base}/staged", f"{base}/final")
        assert fs.cat_file(f"{base}/final") == b"part" and not fs.exists(f"{base}/staged")
