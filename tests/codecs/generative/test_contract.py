"""The generative codecs under the codec contract, except detection: the plain codec claims the stream."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from recodec.codecs import detect_codec, get_codec
from recodec.codecs.base import Codec
from tests.codecs.contract import CodecContract

pytest.importorskip("torch")


class _GenerativeContract(CodecContract):
    dependencies: ClassVar[tuple[str, ...]] = ("torch",)

    @pytest.fixture
    def codec(self) -> Codec:
        """A fresh instance (network not yet loaded), so the missing-dependency check runs."""
        return type(get_codec(self.codec_name))()

    def test_sniff_and_detect(self, codec: Codec, layout: tuple[str, int]) -> None:
        # Overrides the contract: a generative codec is never chosen by detection; its stream
        # is the plain codec's, which detection finds and decodes exactly.
        data = codec.encode(self.image(layout), **self.lossy_params)
        assert not codec.sniff(data)
        detected = detect_codec(data)
        assert detected is not None and detected.name == codec.plain_codec and detected.exact_decode
        assert detected.decode(data).shape == self.image(layout).shape

    def test_flags(self, codec: Codec) -> None:
        assert codec.generative and not codec.exact_decode


class TestJpegRestoreContract(_GenerativeContract):
    codec_name = "jpeg-restore"
    dependencies = ("torch", "PIL.Image")
    lossy_params: ClassVar[dict[str, Any]] = {"quality": 30}


class TestHyperpriorGanContract(_GenerativeContract):
    codec_name = "hyperprior-gan"
    dependencies = ("torch", "constriction")
    lossy_params: ClassVar[dict[str, Any]] = {"quality": 1}


def test_every_other_builtin_codec_is_exact_and_not_generative() -> None:
    from recodec.codecs.registry import _BUILTIN

    generative = {n for n in _BUILTIN if get_codec(n).generative}
    assert generative == {"jpeg-restore", "hyperprior-diffusion", "hyperprior-gan"}
    assert all(not get_codec(n).exact_decode for n in generative)
    assert all(get_codec(n).exact_decode for n in set(_BUILTIN) - generative)


def test_auto_never_picks_a_generative_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.codecs import registry

    assert not set(registry.expand_codecs("auto")) & {"jpeg-restore", "hyperprior-gan", "hyperprior-diffusion"}
    # Even a maintainer adding one to the auto list by mistake does not make auto choose it.
    monkeypatch.setattr(registry, "AUTO_CODECS", (*registry.AUTO_CODECS, "jpeg-restore", "hyperprior-gan"))
    picked = registry.expand_codecs("auto", bounded=True)
    assert "jpeg" in picked and not {"jpeg-restore", "hyperprior-gan"} & set(picked)
    assert registry.expand_codecs("jpeg-restore") == ["jpeg-restore"]  # named: used


def test_stored_stream_is_the_plain_one() -> None:
    from recodec.codecs.generative.codecs import HYPERPRIOR_SHA256
    from recodec.codecs.learned.codec import codec_for_weights

    img = np.asarray(np.random.default_rng(0).integers(0, 255, (40, 48, 3)), dtype=np.uint8)
    assert get_codec("jpeg-restore").encode(img, quality=30) == get_codec("jpeg").encode(img, quality=30)
    # The hyperprior release the generative decoders are pinned to (the shipped one, or a retired one).
    plain = codec_for_weights("hyperprior", sha256=HYPERPRIOR_SHA256)
    from recodec.codecs.learned import bitstream

    for name in ("hyperprior-gan", "hyperprior-diffusion"):
        data = get_codec(name).encode(img, quality=1)
        # The GAN codec appends its texture extension (a few bytes); the tiles are the plain codec's.
        assert bitstream.without_extensions(data) == plain.encode(img, quality=1)
        assert (len(bitstream.parse(data)[2]) == 1) == (name == "hyperprior-gan")
        assert np.array_equal(get_codec("hyperprior").decode(data), plain.decode(data))
