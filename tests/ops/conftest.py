"""Fixtures of the scheduled-jobs tests (incremental runs, retire, report): a local SRC and DST."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.reliability.helpers")


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An empty local source folder (tests fill it)."""
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    """A local destination folder path (created by the pipeline)."""
    return tmp_path / "dst"
