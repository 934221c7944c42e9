"""Resumable training: a run stopped by SIGTERM and resumed ends exactly where an uninterrupted run does."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from recodec.tasks import train as T


def _images(folder: Path, count: int = 3, size: int = 80) -> str:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    return str(folder)


def _config(**kw) -> T.TrainConfig:
    base = dict(model="hyperprior", lambdas=(0.002, 0.02), n=8, m=8, steps=8, batch_size=2, crop=64,
                lr_milestones=(0.5,), ste_from=0.5, precision="fp32", channels_last=False,
                eval_minutes=0, threads=1, log_every=1)
    return T.TrainConfig(**{**base, **kw})


def _weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.timeout(120)
def test_sigterm_then_resume_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _images(tmp_path / "data")
    straight = T.train_model(data, str(tmp_path / "a"), _config())
    assert straight["steps"] == 8 and straight["stopped"] == "done"

    real_step, calls = T.train_step, []

    def killed_at_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would; the loop stops after this step
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "train_step", killed_at_third)
    part = T.train_model(data, str(tmp_path / "b"), _config())
    assert part["interrupted"] and part["steps"] == 3
    monkeypatch.setattr(T, "train_step", real_step)
    # A different recipe passed on resume is ignored unless named in `override`.
    resumed = T.train_model(data, str(tmp_path / "c"), _config(batch_size=4), resume=part["checkpoint"])
    assert resumed["steps"] == 8 and resumed["config"]["batch_size"] == 2
    a, c = _weights(straight["checkpoint"]), _weights(resumed["checkpoint"])
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
    stages = resumed["stages"]
    assert [(s["from_step"], s["to_step"]) for s in stages] == [(0, 3), (3, 8)]
    assert stages[0]["status"].startswith("signal") and sum(s["pixels"] for s in stages) == 8 * 2 * 64 * 64


def test_override_extends_the_schedule(tmp_path: Path) -> None:
    data = _images(tmp_path / "data")
    first = T.train_model(data, str(tmp_path / "a"), _config(steps=2))
    more = T.train_model(data, str(tmp_path / "a"), _config(steps=4), override=("steps",))
    assert first["steps"] == 2 and more["steps"] == 4 and T.lr_at(T.TrainConfig(steps=4, lr=1.0,
                                                                                 lr_milestones=(0.5,),
                                                                                 lr_decay=0.1), 2) == 0.1


def test_heldout_loss_keeps_best_checkpoint(tmp_path: Path) -> None:
    data = _images(tmp_path / "data")
    held = [np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)]
    T.train_model(data, str(tmp_path / "a"), _config(steps=2, eval_minutes=1e-9), heldout=held)
    assert (tmp_path / "a" / "best.pt").is_file()
    log = (tmp_path / "a" / "train_log.jsonl").read_text()
    assert '"heldout"' in log


def test_weights_only_checkpoint_resumes_with_fresh_optimizer(tmp_path: Path) -> None:
    data = _images(tmp_path / "data")
    first = T.train_model(data, str(tmp_path / "a"), _config(steps=2))
    state = torch.load(first["checkpoint"], weights_only=True)
    slim = tmp_path / "weights_only.pt"
    torch.save({"model": state["model"], "config": state["config"], "stages": state["stages"]}, slim)
    more = T.train_model(data, str(tmp_path / "b"), _config(steps=3), resume=str(slim), override=("steps",))
    assert more["steps"] == 3 and [s["from_step"] for s in more["stages"]] == [0, 0]


@pytest.mark.timeout(120)
def test_compact_checkpoint_halves_the_optimizer_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository copy: bf16 Adam moments, exact weights and step; a resume from it trains on."""
    data = _images(tmp_path / "data")
    real_step, calls = T.train_step, []

    def stop_at_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(T, "train_step", stop_at_fourth)
    part = T.train_model(data, str(tmp_path / "a"), _config())
    monkeypatch.setattr(T, "train_step", real_step)
    small = tmp_path / "small.ckpt"
    info = T.compact_checkpoint(part["checkpoint"], small)
    assert info["bytes"] < info["source_bytes"]
    full, compact = (torch.load(p, weights_only=True) for p in (part["checkpoint"], small))
    assert all(torch.equal(full["model"][k], compact["model"][k]) for k in full["model"])
    assert compact["step"] == full["step"] == 4
    moments = [v for s in compact["optimizer"]["state"].values() for k, v in s.items() if k.startswith("exp_avg")]
    assert moments and all(v.dtype == torch.bfloat16 for v in moments)
    resumed = T.train_model(data, str(tmp_path / "b"), _config(), resume=str(small))
    assert resumed["steps"] == 8 and resumed["stopped"] == "done"
