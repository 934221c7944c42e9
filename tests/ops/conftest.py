"""Scheduled-jobs tests (incremental runs, retire, report) share the reliability helpers; `src`/`dst` are in tests/conftest.py."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.reliability.helpers")
