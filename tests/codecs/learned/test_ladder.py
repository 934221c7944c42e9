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
from recodec.codecs.learned.codec import DEFAULT_WEIGHTS, WEIGHTS_DIR, codec_for_weights
from recodec.codecs.weights import find_weights
from tests.codecs.exactness import pixel_digest

DATA = Path(__file__).parent / "data"
RECORD = json.loads((DATA / "ladder6.json").read_text())
#: Rate points added below the 6-point ladder; old quality q is now q + NEW.
NEW = 3
#: The 9-point file the extension made (shipped in sessions 10-14, then kept in ``retired/``).
LADDER9 = "de54ef92a24ae9d9dceabebe1a8bdf03decb6b3a1883366ffd1436620c60a563"


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(t.numpy()).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def shipped() -> dict[str, torch.Tensor]:
    """The 9-point file, wherever it is now (shipped or retired)."""
    return torch.load(find_weights(LADDER9, WEIGHTS_DIR, "test"), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def ladder9():
    """(hyperprior, factorized) codecs bound to the 9-point file."""
    codecs = tuple(codec_for_weights(name, sha256=LADDER9) for name in ("hyperprior", "factorized"))
    for codec in codecs:
        codec.load()
    return codecs


def test_ladder_has_the_new_points_first(ladder9) -> None:
    hyperprior, factorized = ladder9
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
def test_old_streams_decode_to_the_same_pixels_at_their_new_quality(name, ladder9) -> None:
    codec = ladder9[0] if name == "hyperprior" else ladder9[1]
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


def test_new_points_lie_below_the_old_ladder(ladder9, photo: np.ndarray) -> None:
    hyperprior = ladder9[0]
    sizes = [len(hyperprior.encode(photo, quality=q)) for q in range(1, NEW + 2)]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert sizes[NEW] == RECORD["streams"]["hyperprior 1"]["bytes"]


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


def _six_point_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The 6-point file inside the 9-point one: the old rows of every per-quality tensor."""
    from recodec.codecs.learned.entropy import pack_tables

    m = int(state["meta"][2])
    six = dict(state)
    six["enc.log_gain"], six["gs.inv_gain"] = state["enc.log_gain"][NEW:], state["gs.inv_gain"][NEW:]
    six["meta"] = state["meta"].clone()
    six["meta"][3] = 6
    counts, lengths, offsets = (state[f"tab.y.{k}"].numpy() for k in ("counts", "lengths", "offsets"))
    rows = [counts[i, : lengths[i]] for i in range(NEW * m, len(lengths))]
    six.update({f"tab.y.{k}": torch.from_numpy(v) for k, v in pack_tables(rows, offsets[NEW * m:].tolist()).items()})
    return six


@pytest.fixture(scope="module")
def ladder_model():
    """The float model of the repository training state (the 9-point ladder)."""
    from recodec.codecs.learned.models import build_model
    from recodec.tasks.train import config_from_json

    ckpt = torch.load(Path(DEFAULT_WEIGHTS).parents[1] / "train_state" / "hyperprior.ckpt", map_location="cpu",
                      weights_only=True)
    if "ladder_extension" not in json.loads(ckpt["stages"])[-1]:
        pytest.skip("the repository training state has moved on from the ladder extension that made the "
                    "9-point file (it was checked against it while it was the repository's state)")
    config = config_from_json(ckpt["config"])
    model = build_model(config.model, config.n, config.m, len(config.lambdas))
    model.load_state_dict(ckpt["model"])
    return model


def test_shipped_file_is_its_six_point_part_extended_by_the_training_state(shipped, ladder_model, photo) -> None:
    from recodec.codecs.learned.export import extend_shipped_state

    out = extend_shipped_state(_six_point_part(shipped), ladder_model, NEW, [photo[:128, :128]])
    assert set(out) == set(shipped)
    assert all(torch.equal(out[k], shipped[k]) for k in shipped)


def test_extension_refuses_a_model_whose_old_gains_moved(shipped, ladder_model, photo) -> None:
    import copy

    from recodec.codecs.learned.export import extend_shipped_state

    moved = copy.deepcopy(ladder_model)
    with torch.no_grad():
        moved.log_gain[NEW + 2, 0] += 1e-3
    with pytest.raises(ValueError, match="existing encoder gains"):
        extend_shipped_state(_six_point_part(shipped), moved, NEW, [photo[:128, :128]])


@pytest.mark.timeout(120)
def test_ladder_training_moves_only_the_new_rows_resumes_and_writes_a_resumable_state(tmp_path: Path) -> None:
    from recodec.tasks import train as T
    from recodec.tasks.ladder import QUALITY_ROWS, extended_state, train_new_qualities, write_training_state
    from tests.codecs.learned.test_resume import _config, _images

    data = _images(tmp_path / "data")
    src = T.train_model(data, str(tmp_path / "src"), _config(steps=2))["checkpoint"]
    kw = dict(batch_size=2, crop=64, precision="fp32")
    first = train_new_qualities(data, str(tmp_path / "lad"), src, (0.0005,), steps=3, **kw)
    second = train_new_qualities(data, str(tmp_path / "lad"), src, (0.0005,), steps=5, **kw)
    assert first["step"] == 3 and second["step"] == 5 and len(second["stages"]) == 2
    assert second["lambdas"] == [0.0005, 0.002, 0.02]
    old = torch.load(src, weights_only=True)["model"]
    new = torch.load(second["checkpoint"], weights_only=True)["model"]
    start = extended_state(old, 8, 1)
    for key, value in old.items():
        if key in QUALITY_ROWS or key.startswith("density_y."):
            rows = 1 if key in QUALITY_ROWS else 8
            assert torch.equal(new[key][rows:], value), key
        else:
            assert torch.equal(new[key], value), key
    assert not torch.equal(new["log_gain"][:1], start["log_gain"][:1])
    assert not torch.equal(new["log_inv_gain"][:1], start["log_inv_gain"][:1])

    write_training_state(second["checkpoint"], src, tmp_path / "state.ckpt")
    run = T._start_run(T.TrainConfig(threads=1), "cpu", init_from=None, resume=str(tmp_path / "state.ckpt"),
                       override=())
    assert run.config.lambdas == (0.0005, 0.002, 0.02) and run.step == 2
    T.train_step(run.model, run.opt, torch.rand(1, 3, 64, 64), 0, 0.0005, "fp32")  # the extended Adam state fits
