"""Retire deletes only sources whose output is proven, logs every action first, and survives interruption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recodec.config import ReconcileConfig
from recodec.flows.reconcile import reconcile
from recodec.storage import etag_of, url_to_fs
from recodec.tasks import audit as audit_mod
from recodec.tasks import retire_act
from recodec.tasks.retire import retire
from recodec.tasks.retire_log import read_log, retired_pins
from tests.conftest import upload_tree
from tests.reliability.faults import png_bytes
from tests.reliability.helpers import audit_report, job_config, rows_of, run_job, write_archive

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


def _uri(src: Path, key: str) -> str:
    return str(src / key)


def _proven_archive(src: Path, dst: Path, n: int = 4) -> list[str]:
    keys = write_archive(src, n)
    run_job(job_config(src, dst))
    assert reconcile(ReconcileConfig(dst=str(dst), workers=1))["ok"]
    return keys


def test_retire_only_proven_sources_and_never_a_stale_one(src: Path, dst: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    keys = write_archive(src, 6)
    run_job(job_config(src, dst))
    assert reconcile(ReconcileConfig(dst=str(dst), workers=1))["ok"]
    outs = {r["source_key"]: r["dest_uri"] for r in rows_of(dst)}
    Path(outs[keys[1]]).write_bytes(b"bit rot")  # failed reconcile
    assert not reconcile(ReconcileConfig(dst=str(dst), workers=1))["ok"]
    (src / keys[2]).write_bytes(png_bytes(50, 32, 32))  # re-run: a new row that no verdict covers yet
    run_job(job_config(src, dst))
    (src / keys[0]).write_bytes(png_bytes(51, 32, 32))  # changed after its run
    # A violation class audit does not have today (the collision check of #9), naming an output:
    real_audit = audit_mod.audit

    def with_collision(*args: Any, **kw: Any) -> Any:
        report = real_audit(*args, **kw)
        report.add("output_collision", outs[keys[3]], f"two sources write {outs[keys[3]]}")
        return report

    monkeypatch.setattr(audit_mod, "audit", with_collision)

    dry = retire(str(src), str(dst))
    assert dry.dry_run and sorted(dry.eligible) == [_uri(src, keys[4]), _uri(src, keys[5])]
    why = {k: dry.refused[_uri(src, k)].split(":")[0] for k in keys[:4]}
    assert why == {keys[0]: "audit_violation", keys[1]: "verdict_not_ok", keys[2]: "no_verdict",
                   keys[3]: "audit_violation"}
    assert all((src / k).exists() for k in keys) and read_log(str(dst)).num_rows == 0  # nothing touched

    trash = tmp_path / "trash"
    done = retire(str(src), str(dst), trash=str(trash), yes=True)
    assert sorted(done.retired) == [_uri(src, keys[4]), _uri(src, keys[5])] and not done.errors
    assert not (src / keys[4]).exists() and (trash / keys[4]).exists()
    assert all((src / k).exists() for k in keys[:4])
    log = read_log(str(dst)).to_pylist()
    assert sorted((r["source_uri"], r["phase"]) for r in log) == sorted(
        (_uri(src, k), p) for k in keys[4:] for p in ("intent", "done"))
    intents = {r["source_uri"]: r["logged_at"] for r in log if r["phase"] == "intent"}
    assert all(r["logged_at"] >= intents[r["source_uri"]] for r in log)

    again = retire(str(src), str(dst), trash=str(trash), yes=True)  # idempotent
    assert again.already_retired == 2 and not again.retired and read_log(str(dst)).num_rows == 4
    monkeypatch.setattr(audit_mod, "audit", real_audit)
    named = {v["uri"] for v in audit_report(src, dst).violations}
    assert not named & {_uri(src, k) for k in keys[4:]}  # audit understands retired sources
    assert set(retired_pins(str(dst))) == {_uri(src, k) for k in keys[4:]}


def test_pin_is_checked_at_the_moment_of_deletion(src: Path, dst: Path) -> None:
    keys = _proven_archive(src, dst, 2)
    path = src / keys[0]
    stat = path.stat()
    row = {"source_etag": etag_of(url_to_fs(str(path))[0].info(str(path))), "source_bytes": stat.st_size}
    sha = "0" * 64  # what the intent pinned; the file now has other bytes with the same mtime and size
    assert retire_act.act(url_to_fs(str(src))[0], str(path), row, None, sha, None)[0] == "refused"
    assert path.exists() and path.stat().st_mtime_ns == stat.st_mtime_ns  # put back untouched
    assert not [p for p in path.parent.iterdir() if ".recodec-retire-" in p.name]


def test_interrupted_retire_completes_on_rerun(src: Path, dst: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _proven_archive(src, dst, 4)
    real = retire_act._dispose
    calls = {"n": 0}

    def crash_after_claim(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process dies with one source claimed, not yet deleted
        return real(*args, **kw)

    monkeypatch.setattr(retire_act, "_dispose", crash_after_claim)
    with pytest.raises(KeyboardInterrupt):
        retire(str(src), str(dst), yes=True)
    assert {r["phase"] for r in read_log(str(dst)).to_pylist()} == {"intent"}
    monkeypatch.setattr(retire_act, "_dispose", real)

    finished = retire(str(src), str(dst), yes=True)
    assert sorted(finished.retired) == [_uri(src, k) for k in keys] and not finished.refused
    assert not [p for p in src.rglob("*") if p.is_file()]  # no claimed leftovers either
    assert set(retired_pins(str(dst))) == {_uri(src, k) for k in keys}
    assert not audit_report(src, dst).violations


def test_retire_on_s3_uses_conditional_deletes(tmp_path: Path, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    import s3fs

    local = tmp_path / "local"
    keys = write_archive(local, 4)
    src, dst, trash = f"{s3_bucket}/src", f"{s3_bucket}/dst", f"{s3_bucket}/trash"
    upload_tree(local, src, s3_options)
    run_job(job_config(src, dst, storage_options=s3_options))
    assert reconcile(ReconcileConfig(dst=dst, workers=1, storage_options=s3_options))["ok"]
    fs = s3fs.S3FileSystem(**s3_options)
    bare = src.removeprefix("s3://")
    row = {r["source_key"]: r for r in rows_of(dst, s3_options)}[keys[0]]

    # The store itself refuses a delete of a version other than the pinned one (If-Match -> 412).
    stale = dict(row, source_etag="0" * 32)
    phase, detail = retire_act.act(fs, f"{bare}/{keys[0]}", stale, None, None, s3_options)
    assert phase == "refused" and "conditional delete refused" in detail and fs.exists(f"{bare}/{keys[0]}")

    fs.pipe_file(f"{bare}/{keys[1]}", png_bytes(77, 32, 32))  # changed after its run
    result = retire(src, dst, trash=trash, yes=True, storage_options=s3_options)
    assert sorted(result.retired) == sorted(f"{src}/{k}" for k in (keys[0], keys[2], keys[3]))
    assert result.refused[f"{src}/{keys[1]}"].startswith("audit_violation")
    assert fs.exists(f"{bare}/{keys[1]}") and not fs.exists(f"{bare}/{keys[0]}")
    assert fs.cat_file(f"{trash.removeprefix('s3://')}/{keys[0]}") == (local / keys[0]).read_bytes()
    assert all(r["detail"].endswith("deleted with If-Match") for r in read_log(dst, s3_options).to_pylist()
               if r["phase"] == "done")
