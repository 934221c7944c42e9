"""Loading (safely), tiling and prediction of task models written by the tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recodec.errors import ConfigError, TaskModelError
from recodec.task.model import TaskModel, read_model, tile_spans
from tests.task.models import BlurThreshold, Gradient, HalfSize, MeanClassifier, Raises, save_model


def _image(h: int = 70, w: int = 90, bands: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, bands))
    return np.clip(base + rng.normal(0, 20, (h, w, bands)), 0, 255).astype(np.uint8)


def _load(tmp_path: Path, module: torch.nn.Module, **sidecar: object) -> TaskModel:
    return TaskModel.from_ref(read_model(str(save_model(module, tmp_path / "models" / "m.pt", **sidecar))))


@pytest.mark.parametrize("length, tile, overlap", [(100, 32, 8), (64, 32, 0), (33, 32, 4), (20, 32, 4), (7, 0, 0)])
def test_tile_spans_cover_every_pixel_once(length: int, tile: int, overlap: int) -> None:
    spans = tile_spans(length, tile, overlap)
    covered = [p for _, lo, hi in spans for p in range(lo, hi)]
    assert covered == list(range(length))
    for start, lo, hi in spans:
        assert start <= lo and (tile == 0 or hi <= start + max(tile, 1) or length <= tile)


def test_tiled_segmentation_equals_whole_image(tmp_path: Path) -> None:
    """A 3x3 model on overlapping tiles gives the whole-image answer (tile borders are discarded)."""
    img = _image()
    whole = _load(tmp_path / "a", BlurThreshold()).predict(img)
    tiled = _load(tmp_path / "b", BlurThreshold(), tile=32, overlap=8, batch_size=3).predict(img)
    assert whole.shape == (70, 90) and whole.dtype == np.int32
    assert set(np.unique(whole)) == {0, 1, 2}
    np.testing.assert_array_equal(tiled, whole)


def test_classification_per_tile_and_dense(tmp_path: Path) -> None:
    img = _image(64, 128)
    per_image = _load(tmp_path / "a", MeanClassifier(), kind="classification").predict(img)
    assert per_image.shape == (1,)
    per_tile = _load(tmp_path / "b", MeanClassifier(), kind="classification", tile=64).predict(img)
    assert per_tile.tolist() == [0, 1]  # the left half is dark, the right half bright
    dense = _load(tmp_path / "c", Gradient(), kind="dense", tile=48, overlap=8).predict(img)
    assert dense.shape == (2, 64, 128) and dense.dtype == np.float32


def test_input_bands_scale_offset(tmp_path: Path) -> None:
    model = _load(tmp_path, MeanClassifier(), kind="classification", bands=[2, 0], scale=[2.0, 1.0],
                  offset=[0.0, -1.0])
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0], img[..., 2] = 10, 3
    x = model.model_input(img)
    assert x.shape == (2, 4, 5) and x.dtype == np.float32
    assert np.all(x[0] == 6.0) and np.all(x[1] == 9.0)
    with pytest.raises(TaskModelError, match="band 2 but the image has 1"):
        model.predict(img[..., :1])


def test_model_errors_are_task_model_errors(tmp_path: Path) -> None:
    img = _image(16, 16)
    with pytest.raises(TaskModelError, match="boom from the test model") as info:
        _load(tmp_path / "a", Raises()).predict(img)
    assert str(info.value).startswith("task_model_error:")
    with pytest.raises(TaskModelError, match=r"must return \(N, K, 16, 16\)"):
        _load(tmp_path / "b", HalfSize()).predict(img)
    with pytest.raises(TaskModelError, match="must return"):
        _load(tmp_path / "c", BlurThreshold(), kind="classification").predict(img)


def test_read_model_refuses_archives_urls_and_bad_pins(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    inside = save_model(MeanClassifier(), src / "sub" / "evil.pt", kind="classification")
    with pytest.raises(ConfigError, match="never loaded from the archive"):
        read_model(str(inside), [str(src), str(dst)])
    with pytest.raises(ConfigError, match="never loaded from the archive"):
        read_model(str(save_model(MeanClassifier(), dst / "m.pt", kind="classification")), [f"file://{dst}"])
    link = tmp_path / "elsewhere.pt"
    link.symlink_to(inside)  # a link outside pointing into SRC is still inside SRC
    with pytest.raises(ConfigError, match="never loaded from the archive"):
        read_model(str(link), [str(src)])
    with pytest.raises(ConfigError, match="local file path"):
        read_model("s3://bucket/model.pt")
    outside = save_model(MeanClassifier(), tmp_path / "ok" / "m.pt", kind="classification")
    ref = read_model(str(outside), [str(src), "s3://bucket/x"])
    assert ref.sha256 == hashlib.sha256(outside.read_bytes()).hexdigest()
    side = json.loads(Path(f"{outside}.json").read_text())
    Path(f"{outside}.json").write_text(json.dumps({**side, "sha256": "0" * 64}))
    with pytest.raises(ConfigError, match="does not match the sidecar"):
        read_model(str(outside))
    with pytest.raises(ConfigError, match="no such file"):
        read_model(str(tmp_path / "nope.pt"))


def test_not_torchscript_is_a_task_model_error(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"not a zip")
    Path(f"{path}.json").write_text(json.dumps({"kind": "dense", "bands": [0], "scale": 1, "offset": 0,
                                                "tile": 0, "overlap": 0}))
    with pytest.raises(TaskModelError, match="not a loadable TorchScript"):
        TaskModel.from_ref(read_model(str(path)))
