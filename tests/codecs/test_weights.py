"""Streams stay decodable when the shipped weights change: decoders find older weights by SHA-256."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from recodec.codecs.weights import RETIRED, WEIGHTS_PATH_ENV
from recodec.errors import CodecError, DecodeError

pytest.importorskip("torch")
pytest.importorskip("constriction")


def _newer_release(shipped: Path, folder: Path) -> Path:
    """A copy of ``shipped`` with other bytes (as a later release's weights would be), pinned beside it."""
    import torch

    from recodec.digest import sha256_file

    state = torch.load(shipped, map_location="cpu", weights_only=True)
    state["zz_release_note"] = torch.tensor([2026, 11, 30])
    folder.mkdir(parents=True, exist_ok=True)
    newer = folder / shipped.name
    torch.save(state, newer)
    (folder / "pins.json").write_text(json.dumps({shipped.name: sha256_file(newer)}))
    return newer


def _hyperprior(weights: Path | None = None) -> Any:
    from recodec.codecs.learned.codec import HyperpriorCodec

    return HyperpriorCodec(weights=weights)


def _rnn(weights: Path | None = None) -> Any:
    from recodec.codecs.rnn.codec import RnnCodec

    return RnnCodec(weights=weights)


CODECS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "hyperprior": (_hyperprior, {"quality": 1}),
    "rnn": (_rnn, {"iterations": 2}),
}


@pytest.mark.parametrize("name", sorted(CODECS))
def test_older_streams_decode_after_the_weights_change(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make, params = CODECS[name]
    old = make()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    stream = old.encode(image, **params)
    expected = old.decode(stream)

    new = make(_newer_release(old.weights, tmp_path / "release"))
    assert new.runtime.sha256 != old.runtime.sha256
    monkeypatch.delenv(WEIGHTS_PATH_ENV, raising=False)
    with pytest.raises(DecodeError, match=WEIGHTS_PATH_ENV) as err:
        new.decode(stream)
    assert old.runtime.sha256.hex() in str(err.value)

    monkeypatch.setenv(WEIGHTS_PATH_ENV, str(old.weights.parent))
    assert np.array_equal(new.decode(stream), expected)
    assert np.array_equal(new.decode(new.encode(image, **params)), new.decode(new.encode(image, **params)))

    monkeypatch.delenv(WEIGHTS_PATH_ENV)
    (tmp_path / "release" / RETIRED).mkdir()
    shutil.copy(old.weights, tmp_path / "release" / RETIRED / "older.pt")
    assert np.array_equal(make(new.weights).decode(stream), expected)


def test_a_file_is_trusted_only_for_the_sha_it_has(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.codecs.weights import find_weights, load_pinned

    fake = tmp_path / "hyperprior.pt"
    fake.write_bytes(b"not the weights the stream names")
    monkeypatch.setenv(WEIGHTS_PATH_ENV, str(tmp_path))
    with pytest.raises(DecodeError):
        find_weights("00" * 32, tmp_path / "missing", "hyperprior")
    with pytest.raises(CodecError, match="SHA-256"):
        load_pinned(fake, "hyperprior", expected="00" * 32)


STREAMS = Path(__file__).resolve().parents[1] / "data" / "streams"


@pytest.mark.parametrize("name", sorted(json.loads((STREAMS / "streams.json").read_text())))
def test_streams_of_earlier_releases_still_decode(name: str) -> None:
    """A stream written by earlier shipped weights decodes to the same pixels (retired weights)."""
    from recodec.codecs import get_codec
    from recodec.digest import pixel_sha256

    meta = json.loads((STREAMS / "streams.json").read_text())[name]
    out = get_codec(meta["codec"]).decode((STREAMS / name).read_bytes())
    assert list(out.shape) == meta["shape"]
    assert pixel_sha256(out) == meta["decoded_sha256"]
