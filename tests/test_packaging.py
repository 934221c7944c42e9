"""A wheel carries every shipped weights file: each one under recodec/ matches a package-data glob."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _shipped(path: Path) -> bool:
    """Weights (and their pins) of the codecs, and the task models."""
    in_weights = "weights" in path.parts and path.suffix in (".pt", ".json")
    return in_weights or (path.parent.name == "models" and path.suffix == ".pt")


def test_every_shipped_weights_file_is_package_data() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    shipped = [p for p in (REPO / "recodec").rglob("*") if _shipped(p)]
    assert shipped
    missing = []
    for path in shipped:
        rel = path.relative_to(REPO)
        covered = any(
            rel.parts[:len(pkg.split("."))] == tuple(pkg.split("."))
            and any(fnmatch.fnmatch("/".join(rel.parts[len(pkg.split(".")):]), glob) for glob in globs)
            for pkg, globs in data.items())
        if not covered:
            missing.append(str(rel))
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
