"""Fixtures of the reliability tests (the shared ones, S3 and Ray, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Plain asserts in the shared helpers explain themselves like the tests' own.
pytest.register_assert_rewrite("tests.reliability.helpers")

from tests.reliability.faults import FaultProxy  # noqa: E402


@pytest.fixture
def fault_dir(tmp_path: Path) -> Path:
    """A folder for fault-codec marker files, shared with Ray actors through the job's params."""
    path = tmp_path / "faults"
    path.mkdir()
    return path


@pytest.fixture
def fault_proxy(s3_server: str) -> Iterator[FaultProxy]:
    """A transparent fault proxy in front of the moto server; tests set its rules."""
    with FaultProxy(s3_server, seed=1234) as proxy:
        yield proxy
