"""A tiny end-to-end training run through the Prefect flow (Ray task, export, RD, model card)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _images(folder: Path, count: int, size: int, seed: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for i in range(count):
        base = np.stack([xx * (i + 1), yy * 2, xx + yy], axis=2) % 256
        img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")


@pytest.mark.timeout(420)  # Ray start-up dominates; the shared 2-core box can be very loaded
def test_tiny_training_flow(tmp_path: Path) -> None:
    from recodec.codecs.learned.codec import codec_for_weights
    from recodec.flows.train import train

    _images(tmp_path / "data", 3, 96, 0)
    _images(tmp_path / "eval", 1, 80, 1)
    result = train(str(tmp_path / "data"), str(tmp_path / "run"), model="hyperprior",
                   lambdas=(0.002, 0.02), steps=3, batch_size=2, crop=64, n=8, m=8,
                   eval_data=str(tmp_path / "eval"), max_eval_images=1)
    weights = Path(result["weights"])
    assert weights.is_file() and result["steps"] == 3 and len(result["rd"]) == 2
    assert json.loads((weights.parent / "pins.json").read_text())[weights.name] == result["sha256"]
    card = Path(result["model_card"]).read_text()
    assert "steps: 3" in card and result["sha256"] in card
    codec = codec_for_weights("hyperprior", weights)
    img = np.zeros((40, 50, 3), dtype=np.uint8)
    assert codec.decode(codec.encode(img, quality=2)).shape == (40, 50, 3)
