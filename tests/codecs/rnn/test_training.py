"""Truncated-BPTT training of the rnn codec: resumable to the bit, best model kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from recodec.codecs.rnn.training import RnnTrainConfig, train


def _config(steps: int) -> RnnTrainConfig:
    return RnnTrainConfig(steps=steps, batch_size=2, crop=32, tbptt=2, iterations=3, bits=8, hid=16,
                          eval_every=2, log_every=1, checkpoint_seconds=0, threads=1)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 56, 3), dtype=np.uint8) for _ in range(3)]
    straight = train(images, images[:1], str(tmp_path / "a"), _config(4))
    train(images, images[:1], str(tmp_path / "b"), _config(2))
    resumed = train(images, images[:1], str(tmp_path / "b"), _config(4), given=("steps",))  # from step 2
    assert straight["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    best = torch.load(tmp_path / "a" / "best.pt", weights_only=True)
    assert best["step"] in (2, 4) and len(best["eval_psnr"]) == 3
    assert (tmp_path / "a" / "train_log.jsonl").read_text().count("l1_first") == 4


def test_resume_keeps_the_checkpoint_recipe_and_stops_on_time_budget(tmp_path: Path) -> None:
    images = [np.random.default_rng(1).integers(0, 256, (48, 56, 3), dtype=np.uint8)]
    train(images, images, str(tmp_path), _config(2))
    # A caller's defaults (steps, crop) do not replace the resumed run's recipe unless given.
    stopped = train(images, images, str(tmp_path), RnnTrainConfig(threads=1, max_seconds=0))
    assert stopped["steps"] == 2 and stopped["stopped"] == "done"
    assert stopped["config"]["crop"] == 32 and stopped["config"]["steps"] == 2
    longer = replace(_config(50), max_seconds=0)
    budget = train(images, images, str(tmp_path), longer, given=("steps",))
    assert budget["steps"] == 2 and budget["stopped"] == "time budget" and not budget["interrupted"]
