"""Recorded seconds per test file, so the longest files start first (``make test`` ends on short ones).

Regenerate from a JUnit report of a full run:
``PYTEST_ADDOPTS=--junitxml=/tmp/junit.xml make test && python -m tests.durations /tmp/junit.xml``.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

FILE = Path(__file__).with_name("durations.json")


def load() -> dict[str, float]:
    """Seconds per test file (path relative to the repository), empty when nothing is recorded."""
    try:
        return json.loads(FILE.read_text())
    except (OSError, ValueError):
        return {}


def from_junit(report: Path) -> dict[str, float]:
    """Seconds per test file summed over a JUnit XML report's test cases (setup and teardown included)."""
    seconds: Counter[str] = Counter()
    for case in ET.parse(report).iter("testcase"):
        module = [p for p in case.get("classname", "").split(".") if not p[:1].isupper()]
        seconds["/".join(module) + ".py"] += float(case.get("time", 0))
    return {k: round(v, 1) for k, v in sorted(seconds.items()) if v >= 1}


if __name__ == "__main__":
    FILE.write_text(json.dumps(from_junit(Path(sys.argv[1])), indent=0) + "\n")
