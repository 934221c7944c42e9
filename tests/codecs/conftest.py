"""Parametrise contract tests over every layout the codec under test claims."""

from __future__ import annotations

import pytest

from recodec.codecs import get_codec
from tests.codecs.contract import supported_layouts


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give ``layout`` one value per (dtype, bands) the class's codec supports."""
    if "layout" in metafunc.fixturenames and metafunc.cls is not None:
        layouts = supported_layouts(get_codec(metafunc.cls.codec_name))
        metafunc.parametrize("layout", layouts, ids=[f"{d}x{b}" for d, b in layouts])
