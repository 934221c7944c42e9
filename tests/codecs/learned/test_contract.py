"""The learned codecs under the same codec contract as every other codec."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from recodec.codecs import get_codec
from recodec.codecs.base import Codec
from tests.codecs.contract import CodecContract


class _LearnedContract(CodecContract):
    dependencies: ClassVar[tuple[str, ...]] = ("torch", "constriction")
    lossy_params: ClassVar[dict[str, Any]] = {"quality": 2}

    @pytest.fixture
    def codec(self) -> Codec:
        """A fresh instance (weights not yet loaded), so the missing-dependency check runs."""
        return type(get_codec(self.codec_name))()


class TestHyperpriorContract(_LearnedContract):
    codec_name = "hyperprior"


class TestFactorizedContract(_LearnedContract):
    codec_name = "factorized"
