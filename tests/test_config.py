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
