"""Storage-side attacks of issue #9: SRC/DST aliases, output collisions, keys parsed as URLs,
and the "smaller problems" (long names, copied DST, dangling links, corrupt parts...).

Every case ends with the bar of the issue: sources byte-identical, every ok row's output present
with its SHA-256, no two ok rows sharing an output, and an audit that is clean exactly then.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from recodec.cli import cli
from recodec.errors import LocationError
from recodec.locations import check_src_dst
from recodec.layout import manifest_part_path
from recodec.manifest import MANIFEST_SCHEMA, PartSink, to_table
from recodec.tasks.shard import ShardContext
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    audit_report,
    by_key,
    commit,
    job_config,
    prepare_shards,
    rows_of,
    violation_kinds,
    write_archive,
)
from tests.reliability.faults import png_bytes


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run_direct(src: Path | str, dst: Path | str, **overrides: Any) -> list[dict[str, Any]]:
    """Plan and compress every shard in this process (no Ray, no Prefect); return the rows."""
    spec, shards = prepare_shards(job_config(src, dst, **overrides))
    ctx = ShardContext(spec)
    for shard in shards:
        assert commit(ctx, ctx.process_shard(shard))
    return rows_of(dst, overrides.get("storage_options"))


# --- 1. SRC and DST compared by what they are -------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "same/", "same/../same", "./same", "ABS", "file://ABS",
                                      "file://ABS/", "link"])
def test_dst_that_is_src_is_refused_however_spelled(tmp_path: Path, spelling: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "same").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "same")
    dst = spelling.replace("ABS", str(tmp_path / "same"))
    with pytest.raises(LocationError, match="DST is SRC"):
        check_src_dst("same", dst)
    with pytest.raises(LocationError, match="DST is SRC"):
        check_src_dst(dst, "same")


def test_dst_inside_or_containing_src_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "into-src").symlink_to(tmp_path / "src" / "sub")
    for dst in ("src/out", "./src/sub/../out", f"file://{tmp_path}/src/x", "elsewhere/into-src/out"):
        with pytest.raises(LocationError, match="inside SRC"):
            check_src_dst("src", dst)
    for dst in (".", str(tmp_path), "src/.."):
        with pytest.raises(LocationError, match="contains SRC"):
            check_src_dst("src/sub", dst)
    check_src_dst("src", "src2")  # a sibling that shares a prefix is fine
    check_src_dst("src", "elsewhere/out")


@pytest.mark.parametrize("src,dst,ok", [
    ("s3://b/archive", "s3://b/archive/", False),
    ("s3://b/archive/", "s3a://b/archive", False),
    ("s3://b/archive", "s3://b/archive/out", False),
    ("s3://b/archive/x", "s3://b/archive", False),
    ("s3://b", "s3://b/out", False),
    ("s3://b/archive", "s3://b/Archive", True),  # S3 keys are case-sensitive: another prefix
    ("s3://b/archive", "s3://b/archive2", True),
    ("s3://b/archive", "s3://c/archive", True),
    ("s3://b/archive", "/b/archive", True),  # another store
])
def test_object_store_locations_compare_bucket_and_prefix(src: str, dst: str, ok: bool,
                                                          s3_options: dict[str, Any]) -> None:
    if ok:
        check_src_dst(src, dst, s3_options)
    else:
        with pytest.raises(LocationError):
            check_src_dst(src, dst, s3_options)


def test_run_over_its_own_source_leaves_sources_untouched(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_archive(tmp_path / "same", 3)
    (tmp_path / "alias").symlink_to(tmp_path / "same")
    before = _digests(tmp_path / "same")
    for dst in ("same/../same", "alias", "same/out"):
        result = CliRunner().invoke(cli, ["run", "same", dst, "--codec", "png"])
        assert result.exit_code == 2 and "error: bad_location" in result.output, result.output
        assert "Traceback" not in result.output
    assert _digests(tmp_path / "same") == before


# --- 2. No two sources claim one output -------------------------------------------------------


def _tif_bytes(seed: int) -> bytes:
    import tifffile
    import io

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8))
    return buf.getvalue()


def test_geotiff_kept_key_and_converted_png_get_two_outputs(src: Path, dst: Path) -> None:
    (src / "a.png").write_bytes(png_bytes(1, 24, 24))
    (src / "a.tif").write_bytes(_tif_bytes(2))
    before = _digests(src)
    rows = assert_one_row_each(_run_direct(src, dst, codec="jpeg", container="geotiff"), ["a.png", "a.tif"])
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert rows["a.png"]["dest_key"] != rows["a.tif"]["dest_key"]
    assert_audit_clean(src, dst)
    assert _digests(src) == before


def test_copy_unchanged_and_converted_output_get_two_names(src: Path, dst: Path) -> None:
    (src / "a.jpg").write_bytes(_jpeg(3))  # flat: far smaller as a PNG -> ok, "a.png"
    (src / "a.png").write_bytes(_noise_png(4))  # noise: no gain -> copied verbatim
    rows = by_key(_run_direct(src, dst, codec="png", quality=None, copy_unchanged=True, allow_growth=False))
    assert rows["a.png"]["container"] == "copy"  # no gain: the source is copied verbatim
    assert rows["a.jpg"]["dest_key"] == "a.png" and rows["a.png"]["dest_key"] != "a.png"
    assert_audit_clean(src, dst)


def _jpeg(seed: int) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg8_encode(np.full((64, 64, 3), seed, dtype=np.uint8), level=95))


def _noise_png(seed: int) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.png_encode(
        np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8), level=9))


def test_a_collision_that_slips_through_is_reported(src: Path, dst: Path) -> None:
    write_archive(src, 2, folders=1)
    rows = _run_direct(src, dst)
    # Forge a part in which the second source claims the first one's output (an old bug's output).
    first, second = sorted(rows, key=lambda r: r["source_key"])
    forged = dict(second, dest_key=first["dest_key"], dest_uri=first["dest_uri"],
                  dest_sha256=first["dest_sha256"], dest_bytes=first["dest_bytes"],
                  created_at=second["created_at"].replace(year=2099), job_key="forged")
    sink = PartSink(str(dst))
    sink.write_part(to_table([forged], MANIFEST_SCHEMA), manifest_part_path(sink.root, "forged", 0))
    kinds = violation_kinds(audit_report(src, dst))
    assert kinds["output_collision"] == 1, kinds
    from recodec.tasks.reconcile import mark_collisions, rows_to_check, check_row
    from recodec.manifest import read_manifest

    checked = mark_collisions(rows_to_check(read_manifest(str(dst))), str(dst), None).to_pylist()
    verdicts = [check_row(r, None, str(dst))[0] for r in checked]
    assert verdicts.count("output_collision") == 2


# --- 6. Keys are keys -------------------------------------------------------------------------

URL_LIKE = ["a::b.png", "c?versionId=x.png", "d#frag.png", "e%20f.png", "g?x=1&y=2.png"]


def test_url_like_local_names_are_paths(src: Path, dst: Path) -> None:
    for i, name in enumerate(URL_LIKE):
        (src / name).write_bytes(png_bytes(i))
    (src / "a").mkdir()  # what "a::b.png" and "c?..." would wrongly be read as
    rows = assert_one_row_each(_run_direct(src, dst), URL_LIKE)
    assert {r["status"] for r in rows.values()} == {"ok"}, rows
    assert (dst / "a::b.jpg").exists() and (dst / "c?versionId=x.jpg").exists()
    assert_audit_clean(src, dst)


def test_url_like_s3_keys_are_keys(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    from recodec.storage import key_safe_s3

    fs = key_safe_s3()(**s3_options)  # plain s3fs would cut "c?versionId=x.png" to "c" when writing
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    for i, name in enumerate(URL_LIKE):
        fs.pipe_file(f"{src.removeprefix('s3://')}/{name}", png_bytes(i))
    # The object s3fs would read for "c?versionId=x.png" if it parsed the key as a URL.
    fs.pipe_file(f"{src.removeprefix('s3://')}/c", b"not this one")
    rows = assert_one_row_each(_run_direct(src, dst, storage_options=s3_options), URL_LIKE)
    assert {r["status"] for r in rows.values()} == {"ok"}, rows
    listed = {p.rsplit("/", 1)[1] for p in fs.find(dst.removeprefix("s3://")) if "/_recodec/" not in p}
    assert listed == {n.rsplit(".", 1)[0] + ".jpg" for n in URL_LIKE}
    assert_audit_clean(src, dst, s3_options)  # must not crash, and every key is found


def test_recodec_audit_command_on_s3_with_url_like_keys(s3_bucket: str, s3_options: dict[str, Any],
                                                        tmp_path: Path) -> None:
    import yaml

    from recodec.storage import key_safe_s3

    fs = key_safe_s3()(**s3_options)
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    for i, name in enumerate(URL_LIKE[:2]):
        fs.pipe_file(f"{src.removeprefix('s3://')}/{name}", png_bytes(i))
    _run_direct(src, dst, storage_options=s3_options)
    config = tmp_path / "s3.yaml"
    config.write_text(yaml.safe_dump({"storage_options": s3_options}))
    result = CliRunner().invoke(cli, ["audit", src, dst, "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output


# --- 11. Smaller problems ---------------------------------------------------------------------


def test_names_of_255_bytes_are_writable(src: Path, dst: Path) -> None:
    name = "n" * 251 + ".png"  # 255 bytes: the temporary name must not add to it
    (src / name).write_bytes(png_bytes(0))
    rows = assert_one_row_each(_run_direct(src, dst), [name])
    assert rows[name]["status"] == "ok", rows[name]["error"]
    assert_audit_clean(src, dst)


def test_unwritable_dst_and_missing_bucket_are_one_line(tmp_path: Path, s3_options: dict[str, Any]) -> None:
    write_archive(tmp_path / "src", 1)
    (tmp_path / "file").write_bytes(b"x")
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "src"), str(tmp_path / "file" / "dst"),
                                      "--codec", "png"])
    assert result.exit_code == 2 and "error: storage_error: cannot write to DST" in result.output
    assert "Traceback" not in result.output
    from recodec.errors import StorageError
    from recodec.locations import check_storage

    with pytest.raises(StorageError, match="cannot write to DST"):
        check_storage(job_config(tmp_path / "src", "s3://no-such-bucket-recodec/dst", storage_options=s3_options))


@pytest.mark.parametrize("kind", ["missing", "empty", "no-images"])
def test_missing_or_empty_src_is_an_error(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "src"
    if kind != "missing":
        src.mkdir()
    if kind == "no-images":
        (src / "notes.txt").write_text("x")
    result = CliRunner().invoke(cli, ["run", str(src), str(tmp_path / "dst"), "--codec", "png"])
    assert result.exit_code == 2 and "error: bad_location" in result.output, result.output
    assert not (tmp_path / "dst" / "_recodec" / "jobs").exists()


def test_empty_s3_prefix_is_an_error(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    from recodec.locations import check_storage

    with pytest.raises(LocationError, match="does not exist or holds no objects"):
        check_storage(job_config(f"{s3_bucket}/nothing-here", f"{s3_bucket}/dst", storage_options=s3_options))


def test_corrupt_manifest_part_is_reported_by_reconcile(src: Path, dst: Path) -> None:
    part = dst / "_recodec" / "manifest" / "job=x" / "shard=00000000.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"PAR1 this is not parquet")
    from recodec.tasks.reconcile import verify

    from recodec.config import ReconcileConfig

    result = verify(ReconcileConfig(dst=str(dst)))
    assert not result["ok"] and len(result["unreadable_parts"]) == 1
    assert result["failures"][0]["verdict"] == "unreadable_part"
    assert violation_kinds(audit_report(None, dst))["unreadable_part"] == 1


def test_dangling_symlink_is_not_source_modified_on_every_audit(src: Path, dst: Path) -> None:
    write_archive(src, 2, folders=1)
    (src / "gone.png").symlink_to(src / "does-not-exist.png")
    rows = _run_direct(src, dst)
    assert {r["source_key"]: r["error"].split(":")[0] for r in rows if r["error"]} == {"gone.png": "source_missing"}
    assert_audit_clean(src, dst)
    assert_audit_clean(src, dst)


def test_audit_of_a_copied_dst_checks_the_copy(src: Path, dst: Path, tmp_path: Path) -> None:
    write_archive(src, 3, folders=1)
    _run_direct(src, dst)
    copy = tmp_path / "copy"
    shutil.copytree(dst, copy)
    victim = next(p for p in sorted(copy.rglob("*.jpg")) if "_recodec" not in p.parts)
    victim.write_bytes(b"damaged")
    kinds = violation_kinds(audit_report(src, copy))
    assert kinds == {"output_mismatch": 1}, kinds
    shutil.rmtree(dst)  # the original is gone: the copy still audits against itself
    victim.unlink()
    assert violation_kinds(audit_report(src, copy)) == {"output_missing": 1}


def test_decode_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["decode", str(tmp_path / "nope.jxl"), str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.startswith("error:") and "Traceback" not in result.output


def test_config_errors_come_before_prefect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.flows import recompress as flow_module

    def no_flow(config: Any) -> None:
        raise AssertionError("Prefect flow started for a bad config")

    monkeypatch.setattr(flow_module, "recompress", no_flow)
    write_archive(tmp_path / "src", 1)
    for extra in (["--param", "nope=1"], ["--target", "psnr>>1"], ["--quality", "500"]):
        result = CliRunner().invoke(cli, ["run", str(tmp_path / "src"), str(tmp_path / "dst"),
                                          "--codec", "jpeg", *extra])
        assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


def test_query_has_no_file_access_unless_allowed(src: Path, dst: Path, tmp_path: Path) -> None:
    write_archive(src, 1)
    _run_direct(src, dst)
    secret = tmp_path / "secret.csv"
    value = "s3cr3tvalue"  # never part of a temporary path (a plain "42" was: pytest-142)
    secret.write_text(f"a\n{value}\n")
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'",
                "SET enable_external_access = true"):
        result = CliRunner().invoke(cli, ["query", str(dst), sql])
        assert result.exit_code == 2 and value not in result.output, result.output
    assert not (tmp_path / "out.csv").exists()
    ok = CliRunner().invoke(cli, ["query", str(dst), "SELECT count(*) AS n FROM latest", "--format", "csv"])
    assert ok.exit_code == 0 and ok.output.splitlines()[1] == "1"
    allowed = CliRunner().invoke(cli, ["query", str(dst), f"SELECT * FROM read_csv('{secret}')",
                                       "--allow-external-access", "--format", "csv"])
    assert allowed.exit_code == 0 and value in allowed.output


def test_known_third_party_warnings_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import recodec  # noqa: F401 - installs the filters

    with caplog.at_level(logging.WARNING):
        logging.getLogger("tifffile").warning("TiffPage 0: parsing GDAL_NODATA tag raised ValueError")
        logging.getLogger("ray._private.authentication.authentication_token_setup").warning(
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled")
        logging.getLogger("tifffile").warning("some other tifffile warning")
    assert [r.getMessage() for r in caplog.records] == ["some other tifffile warning"]
