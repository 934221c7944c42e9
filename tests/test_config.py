"""Tests of recodec.config."""

from pathlib import Path

import pytest

from recodec.config import RunConfig, build_config, load_config_file, parse_params
from recodec.errors import ConfigError


def test_cli_overrides_file_and_params_merge(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("codec: jxl\nparams: {distance: 2, effort: 5}\nshard_size: 8\n")
    cfg = build_config(load_config_file(f), {"src": "a", "dst": "b", "params": {"distance": "1"},
                                             "shard_size": None})
    assert cfg.codec == "jxl" and cfg.shard_size == 8
    assert cfg.params == {"distance": "1", "effort": 5}


def test_unknown_file_key_and_missing_fields(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("codek: jxl\n")
    with pytest.raises(ConfigError, match="codek"):
        load_config_file(f)
    with pytest.raises(ConfigError, match="codec"):
        build_config({}, {"src": "a", "dst": "b"})


def test_src_equal_dst_refused() -> None:
    with pytest.raises(ConfigError):
        RunConfig(src="s3://b/x/", dst="s3://b/x", codec="jpeg").validate()


def test_job_key_tracks_work_not_scheduling() -> None:
    a = RunConfig(src="a", dst="b", codec="jpeg")
    b = RunConfig(src="a", dst="b", codec="jpeg", shard_size=3, workers=7)
    assert a.job_key({"quality": 80}) == b.job_key({"quality": 80})
    assert a.job_key({"quality": 80}) != a.job_key({"quality": 81})


def test_parse_params() -> None:
    assert parse_params(["distance=1.5", " effort = 7"]) == {"distance": "1.5", "effort": "7"}
    with pytest.raises(ConfigError):
        parse_params(["oops"])


def test_public_dict_has_no_storage_options() -> None:
    cfg = RunConfig(src="a", dst="b", codec="jpeg", storage_options={"secret": "x"})
    assert "storage_options" not in cfg.public_dict()


def test_cli_quality_wins_over_the_files_quality_param(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("codec: jpeg\nparams: {quality: 90, subsampling: '4:4:4'}\n")
    cfg = build_config(load_config_file(f), {"src": "a", "dst": "b", "quality": 50})
    from recodec.job import prepare_job

    params = prepare_job(cfg).params["jpeg"]
    assert params["quality"] == 50 and params["subsampling"] == "4:4:4"
    # Without --quality the file's knob stands.
    assert prepare_job(build_config(load_config_file(f), {"src": "a", "dst": "b"})).params["jpeg"]["quality"] == 90


def test_reconcile_and_audit_configs_share_the_precedence(tmp_path: Path) -> None:
    from recodec.config import AuditConfig, ReconcileConfig

    f = tmp_path / "c.yaml"
    f.write_text("src: s\ndst: d\ncodec: jpeg\nworkers: 3\nray_address: auto\nstorage_options: {anon: true}\n")
    file_values = load_config_file(f)
    rec = build_config(file_values, {"dst": "d2", "workers": None, "ray_address": None}, ReconcileConfig)
    assert (rec.dst, rec.workers, rec.ray_address, rec.storage_options) == ("d2", 3, "auto", {"anon": True})
    assert build_config(file_values, {"dst": "d", "workers": 1}, ReconcileConfig).workers == 1
    aud = build_config(file_values, {"src": None, "dst": "d"}, AuditConfig)
    assert (aud.src, aud.dst) == ("s", "d")
    with pytest.raises(ConfigError, match="dst"):
        build_config({}, {"dst": None}, ReconcileConfig)


def test_content_options_change_the_job_only_when_set() -> None:
    base = RunConfig(src="a", dst="b", codec="jpeg")
    assert base.job_key({}) == RunConfig(src="a", dst="b", codec="jpeg", max_image_bytes=5).job_key({})
    keys = {base.job_key({}), RunConfig(src="a", dst="b", codec="jpeg", first_frame_only=True).job_key({}),
            RunConfig(src="a", dst="b", codec="jpeg", accept_warnings=True).job_key({})}
    assert len(keys) == 3
    with pytest.raises(ConfigError):
        RunConfig(src="a", dst="b", codec="jpeg", max_image_bytes=0).validate()
    assert build_config({}, {"src": "a", "dst": "b", "codec": "jpeg", "first_frame_only": True}).first_frame_only
