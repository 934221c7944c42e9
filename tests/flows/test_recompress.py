"""End-to-end: recompress -> query -> reconcile, on local disk and on S3 (moto), with real Ray and Prefect."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from recodec.config import RunConfig
from recodec.config import ReconcileConfig
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.manifest import connect, read_manifest, read_verdicts
from tests.conftest import upload_tree

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")

N_SAMPLES = 6


def _tree_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _config(src: str, dst: str, **kw: Any) -> RunConfig:
    base = dict(codec="jxl", params={"distance": 1.5, "effort": 3}, shard_size=2, workers=2,
                allow_growth=True)
    base.update(kw)
    return RunConfig(src=src, dst=dst, **base).validate()


def test_local_run_query_reconcile_and_resume(sample_archive: Path, tmp_path: Path) -> None:
    before = _tree_hashes(sample_archive)
    dst = tmp_path / "out"
    summary = recompress(_config(str(sample_archive), str(dst)))
    assert summary["images"] == N_SAMPLES and summary["ok"] == N_SAMPLES, summary["first_errors"]
    assert summary["bytes_after"] < summary["bytes_before"]
    assert _tree_hashes(sample_archive) == before  # sources never modified

    con = connect(str(dst))
    rows = con.sql("SELECT source_key, dest_uri, dest_bytes, dest_sha256, width, height, bpp, psnr, ssim, "
                   "ms_ssim, max_abs_error, decoded_sha256, status, worker FROM manifest").fetchall()
    assert len(rows) == N_SAMPLES and len({r[0] for r in rows}) == N_SAMPLES
    for key, dest_uri, nbytes, sha, w, h, bpp, psnr, ssim, msssim, mae, dsha, status, worker in rows:
        data = Path(dest_uri).read_bytes()
        assert len(data) == nbytes and hashlib.sha256(data).hexdigest() == sha
        assert bpp == pytest.approx(nbytes * 8 / (w * h))
        assert psnr > 30 and 0.8 < ssim <= 1 and 0.8 < msssim <= 1 and mae >= 0 and dsha
        assert Path(dest_uri).is_relative_to(dst)
    # DST mirrors SRC's keys, with the output's extension
    assert {Path(r[1]).relative_to(dst).parent.as_posix() for r in rows} == {"landsat", "aerial", "photos"}
    # Nothing half-written is left next to the outputs.
    assert not [p for p in dst.rglob("*.tmp")]

    result = reconcile(ReconcileConfig(str(dst), workers=2))
    assert result["ok"] and result["verdicts"] == {"ok": N_SAMPLES}
    verdicts = read_verdicts(str(dst)).to_pylist()
    assert all(v["worker"] != v["encoder_worker"] for v in verdicts)  # decoded on another actor

    # Re-run: same job, nothing redone, nothing recorded twice.
    again = recompress(_config(str(sample_archive), str(dst), workers=1))
    assert again["shards_resumed"] == again["shards"] and again["images_this_run"] == 0
    assert read_manifest(str(dst)).num_rows == N_SAMPLES

    # A changed knob is a new job: every image is processed again, under a new job key.
    # (In this process: the job key is the subject, and the executor is not part of it.)
    changed = recompress(_config(str(sample_archive), str(dst), params={"distance": 3.0, "effort": 3},
                                 executor="local"))
    assert changed["job_key"] != summary["job_key"] and changed["images_this_run"] == N_SAMPLES
    assert con is not None and connect(str(dst)).sql("SELECT count(*) FROM latest").fetchall()[0][0] == N_SAMPLES


def test_reconcile_reports_missing_truncated_and_bitflipped(sample_archive: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out"
    recompress(_config(str(sample_archive), str(dst), executor="local"))
    outs = sorted(Path(r["dest_uri"]) for r in read_manifest(str(dst)).to_pylist())
    outs[0].unlink()
    data = outs[1].read_bytes()
    outs[1].write_bytes(data[: len(data) // 2])
    data = bytearray(outs[2].read_bytes())
    data[len(data) // 2] ^= 0x10
    outs[2].write_bytes(bytes(data))
    result = reconcile(ReconcileConfig(str(dst), workers=1))
    assert not result["ok"]
    by_uri = {f["dest_uri"]: f["verdict"] for f in result["failures"]}
    assert by_uri == {str(outs[0]): "missing", str(outs[1]): "size_mismatch", str(outs[2]): "sha256_mismatch"}
    assert result["verdicts"]["ok"] == N_SAMPLES - 3


def test_bad_inputs_fail_their_own_row(sample_archive: Path, tmp_path: Path) -> None:
    good = (sample_archive / "photos" / "photo_chelsea.png").read_bytes()
    (sample_archive / "bad").mkdir()
    (sample_archive / "bad" / "truncated.png").write_bytes(good[: len(good) // 3])
    (sample_archive / "bad" / "garbage.tif").write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    (sample_archive / "bad" / "empty.jpg").write_bytes(b"")
    dst = tmp_path / "out"
    summary = recompress(_config(str(sample_archive), str(dst), shard_size=3, executor="local"))
    assert summary["images"] == N_SAMPLES + 3
    assert summary["ok"] == N_SAMPLES and summary["failed"] == 3
    rows = {r["source_key"]: r for r in read_manifest(str(dst)).to_pylist()}
    for key in ("bad/truncated.png", "bad/garbage.tif", "bad/empty.jpg"):
        assert rows[key]["status"] == "failed" and rows[key]["error"].split(":")[0] in {
            "decode_error", "too_large", "unsupported"}, rows[key]["error"]
        assert rows[key]["dest_uri"] is None


def test_unsupported_layout_is_a_failed_row(sample_archive: Path, tmp_path: Path) -> None:
    summary = recompress(_config(str(sample_archive), str(tmp_path / "o"), codec="jpeg", params={}, executor="local",
                                 quality=80, container="raw"))
    rows = read_manifest(str(tmp_path / "o")).to_pylist()
    sixteen = [r for r in rows if r["dtype"] == "uint16"]
    assert sixteen and all(r["status"] == "failed" and r["error"].startswith("unsupported") for r in sixteen)
    assert summary["ok"] == N_SAMPLES - len(sixteen)


def test_s3_run_query_reconcile(sample_archive: Path, s3_bucket: str, s3_options: dict[str, Any]) -> None:
    import s3fs

    src, dst = f"{s3_bucket}/archive", f"{s3_bucket}/recoded"
    upload_tree(sample_archive, src, s3_options)
    fs = s3fs.S3FileSystem(**s3_options)
    before = {p: fs.info(p)["ETag"] for p in fs.find(src)}
    summary = recompress(_config(src, dst, storage_options=s3_options))
    assert summary["ok"] == N_SAMPLES, summary["first_errors"]
    assert {p: fs.info(p)["ETag"] for p in fs.find(src)} == before
    con = connect(dst, s3_options)
    uris = [r[0] for r in con.sql("SELECT dest_uri FROM manifest WHERE status = 'ok'").fetchall()]
    assert len(uris) == N_SAMPLES and all(u.startswith(dst + "/") for u in uris)
    assert "testing-secret" not in str(read_manifest(dst, s3_options).to_pylist())
    assert reconcile(ReconcileConfig(dst, workers=1, storage_options=s3_options))["ok"]
    # Corrupt one output in the bucket: reconcile must say so.
    victim = uris[0].removeprefix("s3://")
    data = bytearray(fs.cat_file(victim))
    data[-10] ^= 0xFF
    fs.pipe_file(victim, bytes(data))
    result = reconcile(ReconcileConfig(dst, workers=1, storage_options=s3_options))
    assert not result["ok"] and [f["verdict"] for f in result["failures"]] == ["sha256_mismatch"]
