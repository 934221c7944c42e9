"""Truncated-BPTT training of the rnn codec: resumable to the bit, best model kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
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


def test_an_ms_ssim_fine_tune_restarts_the_schedule_and_picks_best_by_ms_ssim(tmp_path: Path) -> None:
    """``--lr`` on a resumed run restarts the schedule; the MS-SSIM objective resets and drives best.pt."""
    import json

    from recodec.codecs.rnn import training as R

    images = [np.random.default_rng(2).integers(0, 256, (48, 56, 3), dtype=np.uint8)]
    train(images, images, str(tmp_path), _config(2))
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert first["best_metric"] == "psnr" and first["best"] > 0
    tune = replace(_config(4), lr=5e-4, ms_ssim_weight=1.0, lr_halving=1)
    out = train(images, images, str(tmp_path), tune, given=("steps", "lr", "ms_ssim_weight", "lr_halving"))
    assert out["steps"] == 4 and out["config"]["lr_restart_step"] == 2 and out["config"]["ms_ssim_weight"] == 1.0
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["best_metric"] == "ms_ssim_db"
    assert state["best"] < first["best"]  # MS-SSIM dB of a barely trained model, not the old PSNR record
    assert state["optimizer"]["param_groups"][0]["lr"] == 5e-4 * 0.5  # step 3: one halving after the restart
    evals = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines() if "eval_psnr" in line]
    assert all(len(e["eval_ms_ssim_db"]) == 3 for e in evals)
    assert R.best_metric(tune) == "ms_ssim_db" and R.best_metric(_config(1)) == "psnr"


def test_the_ms_ssim_loss_term_is_finite_under_bf16_and_lowers_with_quality() -> None:
    from recodec.codecs.rnn.training import iteration_loss

    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    near, far = x + 0.02 * torch.randn_like(x), x + 0.2 * torch.randn_like(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (a, l1a), (b, l1b) = iteration_loss(x, near, 1.0), iteration_loss(x, far, 1.0)
    assert torch.isfinite(a) and torch.isfinite(b) and a < b
    assert float(a - l1a) > 0  # the MS-SSIM term is there
    plain, l1 = iteration_loss(x, near, 0.0)
    assert torch.equal(plain, l1)


def test_the_train_command_passes_the_ms_ssim_weight_to_the_rnn_recipe() -> None:
    import pytest

    from recodec.errors import ConfigError
    from recodec.flows.train import _config

    config, given = _config({"model": "rnn", "lr": 2e-4, "ms_ssim_weight": 2.0}, "bf16", None, 1)
    assert config.extra == {"ms_ssim_weight": 2.0} and config.lr == 2e-4 and "lr" in given
    assert _config({"model": "rnn", "ms_ssim_weight": None}, "bf16", None, 1)[0].extra == {}
    with pytest.raises(ConfigError, match="only for --model rnn"):
        _config({"model": "factorized", "ms_ssim_weight": 1.0}, "bf16", None, 1)


def test_train_rnn_summary_names_the_rnn_model(tmp_path: Path) -> None:
    """A direct call with a default TrainConfig (model "hyperprior") still reports the model it trained."""
    from PIL import Image

    from recodec.tasks.train import TrainConfig, train_rnn

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(2)
    for i in range(12):  # some of them fall in the held-out split, the rest train
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(data / f"img{i}.png")
    summary = train_rnn(str(data), str(tmp_path / "out"),
                        TrainConfig(steps=1, batch_size=1, crop=32, threads=1, extra={"iterations": 2, "bits": 4, "hid": 8}))
    assert summary["steps"] == 1 and summary["config"]["model"] == "rnn"


def test_precision_auto_resolves_per_machine_and_the_card_says_which(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Emulated bf16 (AVX2-only CPUs) is several times slower: ``auto`` trains in fp32 there."""
    from recodec import precision
    from recodec.codecs.rnn import training as R
    from recodec.codecs.rnn.card import _precision

    if torch.cuda.is_available():
        pytest.skip("auto is bf16 on a GPU whatever the CPU")
    autocasts: list[bool] = []
    real = R.tbptt_step
    monkeypatch.setattr(R, "tbptt_step", lambda model, x, tbptt, autocast, w: autocasts.append(autocast)
                        or real(model, x, tbptt, autocast, w))
    images = [np.random.default_rng(3).integers(0, 256, (48, 56, 3), dtype=np.uint8)]
    for native, expected in ((False, "fp32"), (True, "bf16")):
        monkeypatch.setattr(precision, "native_bf16", lambda native=native: native)
        out = train(images, images, str(tmp_path / expected), _config(1))
        assert out["precision"] == expected and out["config"]["precision"] == "auto"
        assert autocasts and all(a is (expected == "bf16") for a in autocasts)
        autocasts.clear()
        assert _precision(out) == expected
    assert _precision({"config": {"bf16": False}}) == "fp32"  # the summary of a run before this field
