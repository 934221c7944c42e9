"""Sidecar validation: every malformed field is a clear ConfigError naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recodec.errors import ConfigError
from recodec.task.spec import load_spec, parse_spec

GOOD: dict[str, Any] = {"kind": "segmentation", "bands": [0, 1, 2], "scale": 0.5, "offset": -1,
                        "tile": 64, "overlap": 8}


def test_good_sidecar_expands_per_band_values() -> None:
    spec = parse_spec(GOOD)
    assert spec.kind == "segmentation" and spec.bands == (0, 1, 2)
    assert spec.scale == (0.5, 0.5, 0.5) and spec.offset == (-1.0, -1.0, -1.0)
    assert spec.tile == 64 and spec.overlap == 8 and spec.batch_size == 16
    assert parse_spec({**GOOD, "scale": [1, 2, 3]}).scale == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("change, words", [
    ({"kind": "detection"}, "kind must be one of"),
    ({"bands": []}, "bands must be"),
    ({"bands": [0, -1]}, "bands must be"),
    ({"bands": [0.5]}, "bands must be"),
    ({"scale": [1, 2]}, "scale has 2 values for 3 bands"),
    ({"scale": 0}, "scale must not be 0"),
    ({"offset": "x"}, "offset must be a finite number"),
    ({"offset": float("nan")}, "offset must be a finite number"),
    ({"tile": -1}, "tile must be"),
    ({"overlap": 64}, "overlap must be"),
    ({"tile": 0, "overlap": 4}, "overlap must be"),
    ({"batch_size": 0}, "batch_size"),
    ({"colour": "red"}, "unknown key(s) colour"),
    ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
])
def test_bad_fields_are_named(change: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match="task model sidecar") as info:
        parse_spec({**GOOD, **change})
    assert words in str(info.value)


def test_missing_fields_and_non_mapping() -> None:
    with pytest.raises(ConfigError, match="missing tile, overlap"):
        parse_spec({k: v for k, v in GOOD.items() if k not in ("tile", "overlap")})
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_spec([1, 2])


def test_sidecar_files_json_yaml_and_ambiguity(tmp_path: Path) -> None:
    model = tmp_path / "m.pt"
    with pytest.raises(ConfigError, match="no sidecar"):
        load_spec(model)
    (tmp_path / "m.pt.yaml").write_text("kind: dense\nbands: [0]\nscale: 1\noffset: 0\ntile: 0\noverlap: 0\n")
    assert load_spec(model).kind == "dense"
    (tmp_path / "m.pt.json").write_text(json.dumps(GOOD))
    with pytest.raises(ConfigError, match="several sidecars"):
        load_spec(model)
    (tmp_path / "m.pt.yaml").unlink()
    (tmp_path / "m.pt.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_spec(model)
