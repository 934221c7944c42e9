"""Unit tests of recodec.tasks.jobs: parameter resolution across candidate codecs."""

from __future__ import annotations

from pathlib import Path

import pytest

from recodec.config import RunConfig
from recodec.errors import ConfigError, UnknownCodecError
from recodec.job import new_run_id, prepare_job, resolve_candidates


def test_single_codec_resolves_all_params() -> None:
    out = resolve_candidates("jpeg", {"subsampling": "4:4:4"}, 70)
    assert out == {"jpeg": {"quality": 70, "subsampling": "4:4:4", "progressive": False}}


def test_params_go_to_the_codecs_that_know_them() -> None:
    out = resolve_candidates("jpeg,jxl", {"effort": "5"}, 80)
    assert out["jxl"]["effort"] == 5 and "effort" not in out["jpeg"] and out["jpeg"]["quality"] == 80
    with pytest.raises(ConfigError, match="nope"):
        resolve_candidates("jpeg,jxl", {"nope": "1"}, None)


def test_auto_lists_available_lossy_codecs() -> None:
    out = resolve_candidates("auto", {}, None)
    assert {"jxl", "jpeg", "jpeg2000", "lerc"} <= set(out)


def test_prepare_job_rules(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"\x89PNG")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    with pytest.raises(ConfigError, match="target"):
        prepare_job(RunConfig(src=a, dst=b, codec="jpeg,jxl"))
    with pytest.raises(ConfigError, match="quality"):
        prepare_job(RunConfig(src=a, dst=b, codec="jxl", quality=80))
    with pytest.raises(UnknownCodecError):
        prepare_job(RunConfig(src=a, dst=b, codec="nosuch"))
    spec = prepare_job(RunConfig(src=a, dst=b, codec="jpeg,jxl", target="psnr>=40"))
    assert spec.plan_extension == "" and list(spec.params) == ["jpeg", "jxl"]
    assert prepare_job(RunConfig(src=a, dst=b, codec="jxl")).plan_extension == ".jxl"
    from recodec.locations import check_storage

    with pytest.raises(ConfigError, match="DST lies inside SRC"):
        check_storage(RunConfig(src=a, dst=a + "/../a/out", codec="jxl"))


def test_run_ids_sort_by_time_and_are_unique() -> None:
    a, b = new_run_id(), new_run_id()
    assert a != b and a[:8].isdigit()
