"""The shipped example model: pinned, loadable through --task-model's path, and it does its job;
and the trainer that made it runs end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from recodec.task.model import TaskModel, read_model
from recodec.task.train import index_labels, train_task_model
from tests.conftest import SHARED_DATA

MODELS = Path(__file__).resolve().parents[2] / "recodec" / "task" / "models"
#: R, G, B, NIR of: water, vegetation, bright roof, grey field.
QUADRANTS = [(30, 60, 70, 20), (40, 80, 50, 160), (200, 200, 200, 190), (90, 90, 90, 100)]


def _quadrants(side: int = 64) -> np.ndarray:
    img = np.zeros((side, side, 4), np.uint8)
    h = side // 2
    for k, (r, c) in enumerate([(0, 0), (0, h), (h, 0), (h, h)]):
        img[r:r + h, c:c + h] = QUADRANTS[k]
    return img


def test_pins_match() -> None:
    digest = hashlib.sha256((MODELS / "landcover4.pt").read_bytes()).hexdigest()
    assert json.loads((MODELS / "pins.json").read_text()) == {"landcover4.pt": digest}
    assert read_model(str(MODELS / "landcover4.pt")).sha256 == digest  # the sidecar's pin is checked
    assert (MODELS / "landcover4.pt").stat().st_size < 1_000_000


def test_shipped_model_labels_like_the_indices() -> None:
    model = TaskModel.from_ref(read_model(str(MODELS / "landcover4.pt")))
    img = _quadrants()
    labels = index_labels(img.astype(np.float32) / 255)
    assert [labels[16, 16], labels[16, 48], labels[48, 16], labels[48, 48]] == [1, 2, 3, 0]
    pred = model.predict(img)
    assert [pred[16, 16], pred[16, 48], pred[48, 16], pred[48, 48]] == [1, 2, 3, 0]


@pytest.mark.skipif(not (SHARED_DATA / "devset").is_dir(), reason="shared data not present")
def test_shipped_model_on_held_out_scene() -> None:
    from recodec.formats.source import read_image

    scene = read_image((SHARED_DATA / "devset" / "naip_m_4709963_se_14_1_20200831.tif").read_bytes()).array
    crop = scene[200:456, 300:556]
    pred = TaskModel.from_ref(read_model(str(MODELS / "landcover4.pt"))).predict(crop)
    assert (pred == index_labels(crop.astype(np.float32) / 255)).mean() > 0.95


def test_trainer_exports_a_usable_model(tmp_path: Path) -> None:
    import tifffile

    scene = np.tile(_quadrants(64), (2, 2, 1))
    tifffile.imwrite(tmp_path / "scene.tif", scene, photometric="minisblack", planarconfig="contig")
    info = train_task_model([tmp_path / "scene.tif"], tmp_path / "run", eval_paths=[tmp_path / "scene.tif"],
                            steps=6, batch_size=2, crop=32, checkpoint_every=3)
    model = TaskModel.from_ref(read_model(str(tmp_path / "run" / "landcover4.pt")))
    assert info["sha256"] == model.sha256 and 0 <= info["heldout_pixel_accuracy"] <= 1
    assert model.predict(scene).shape == (128, 128)
    assert (tmp_path / "run" / "checkpoint.pt").exists()
