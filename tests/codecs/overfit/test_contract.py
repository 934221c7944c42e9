"""The overfit codec under the same codec contract as every other codec."""

from __future__ import annotations

from typing import Any, ClassVar

from tests.codecs.contract import CodecContract


class TestOverfitContract(CodecContract):
    codec_name = "overfit"
    dependencies: ClassVar[tuple[str, ...]] = ("torch", "constriction")
    lossy_params: ClassVar[dict[str, Any]] = {"iterations": 2}
