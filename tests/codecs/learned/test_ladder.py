"""The extended rate ladder: new low rate points first, every earlier point decoding as before.

``data/ladder6*`` were recorded with the 6-point weights (SHA-256 in ``ladder6.json``) before
the ladder was extended: range-coded payloads of a devset crop at each quality, the SHA-256
of what they decoded to, and digests of every part of the old weights file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recodec.codecs.learned import bitstream
from recodec.codecs.learned.codec import DEFAULT_WEIGHTS
from tests.codecs.exactness import pixel_digest

DATA = Path(__file__).parent / "data"
RECORD = json.loads((DATA / "ladder6.json").read_text())
#: Rate points added below the 6-point ladder; old quality q is now q + NEW.
NEW = 3


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(t.numpy()).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def shipped() -> dict[str, torch.Tensor]:
    return torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=True)


def test_ladder_has_the_new_points_first(hyperprior, factorized) -> None:
    assert hyperprior.knob.high == 6 + NEW and factorized.knob.high == 6 + NEW
    assert hyperprior.knob.low == 1


def test_old_parts_of_the_weights_are_unchanged(shipped) -> None:
    parts = RECORD["parts"]
    for key, digest in parts.items():
        if key == "enc.log_gain":
            assert _digest(shipped[key][NEW:].contiguous()) == digest
        elif key == "gs.inv_gain":
            assert _digest(shipped[key][NEW:].contiguous()) == digest
        elif key == "tab.y.rows":
            m = int(shipped["meta"][2])
            counts, lengths = shipped["tab.y.counts"].numpy(), shipped["tab.y.lengths"].numpy()
            h = hashlib.sha256()
            for i in range(NEW * m, len(lengths)):
                h.update(counts[i, : lengths[i]].astype("<i4").tobytes())
            assert h.hexdigest() == digest
        elif key == "tab.y.offsets":
            m = int(shipped["meta"][2])
            assert _digest(shipped[key][NEW * m:].contiguous()) == digest
        else:
            assert _digest(shipped[key]) == digest, key


@pytest.mark.parametrize("name", ["hyperprior", "factorized"])
def test_old_streams_decode_to_the_same_pixels_at_their_new_quality(name, hyperprior, factorized) -> None:
    codec = hyperprior if name == "hyperprior" else factorized
    for old_q in range(1, 7):
        entry = RECORD["streams"][f"{name} {old_q}"]
        raw = (DATA / entry["file"]).read_bytes()
        payloads, pos = [], 0
        while pos < len(raw):
            size = int.from_bytes(raw[pos:pos + 4], "big")
            payloads.append(raw[pos + 4:pos + 4 + size])
            pos += 4 + size
        header = bitstream.Header(name, codec.runtime.sha256, old_q + NEW, 3, 150, 200, 512)
        assert pixel_digest(codec.decode(bitstream.pack(header, payloads))) == entry["pixels_sha256"]


def test_new_points_lie_below_the_old_ladder(hyperprior, photo: np.ndarray) -> None:
    sizes = [len(hyperprior.encode(photo, quality=q)) for q in range(1, NEW + 2)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[NEW] == RECORD["streams"][f"hyperprior 1"]["bytes"]


def test_extension_keeps_old_rows_and_extrapolates_new_ones() -> None:
    from recodec.tasks.ladder import extended_state

    m = 4
    state = {"log_gain": torch.tensor([[0.0] * m, [1.0] * m]), "log_inv_gain": torch.tensor([[0.0] * m, [-1.0] * m]),
             "density_y.biases.0": torch.arange(2 * m, dtype=torch.float32).view(2 * m, 1, 1), "g_s.0.weight": torch.ones(1)}
    out = extended_state(state, m, 2)
    assert torch.equal(out["log_gain"][:, 0], torch.tensor([-2.0, -1.0, 0.0, 1.0]))
    assert torch.equal(out["log_inv_gain"][:, 0], torch.tensor([2.0, 1.0, 0.0, -1.0]))
    assert torch.equal(out["density_y.biases.0"][2 * m:], state["density_y.biases.0"])
    assert torch.equal(out["density_y.biases.0"][:m], state["density_y.biases.0"][:m])
    assert out["g_s.0.weight"] is state["g_s.0.weight"]
