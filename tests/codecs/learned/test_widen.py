"""Widening a trained hyperprior's latent (recodec.tasks.widen): same codec at first, more room to learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recodec.codecs.learned.models import build_model  # noqa: E402
from recodec.tasks.train import config_from_json, rd_loss  # noqa: E402
from recodec.tasks.widen import widen_checkpoint, widened_state  # noqa: E402


def _small_checkpoint(path: Path, m: int = 8, qualities: int = 3) -> dict:
    """A trained-looking (random) hyperprior checkpoint with N=8, M=m."""
    from dataclasses import asdict

    from recodec.tasks.train import TrainConfig

    torch.manual_seed(0)
    model = build_model("hyperprior", 8, m, qualities)
    with torch.no_grad():  # a latent that is not all zeros after rounding
        model.g_a[6].weight.mul_(20)
    config = TrainConfig(model="hyperprior", n=8, m=m, lambdas=[0.001, 0.01, 0.05][:qualities])
    state = {"model": model.state_dict(), "optimizer": {}, "step": 7, "pixels": 99,
             "config": json.dumps(asdict(config)), "stages": "[]", "best": 1.0}
    torch.save(state, path)
    return state


def _images(n: int = 4, size: int = 64) -> torch.Tensor:
    rng = np.random.default_rng(0)
    base = rng.random((n, 3, size // 8, size // 8)).repeat(8, axis=2).repeat(8, axis=3)
    return torch.from_numpy((0.7 * base + 0.3 * rng.random((n, 3, size, size))).astype(np.float32))


def test_widened_model_codes_like_the_original(tmp_path: Path) -> None:
    """Rounded latents: the same reconstruction and rate of y and z; only the (detached) factorized
    side density of the new channels differs."""
    src, dst = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    _small_checkpoint(src)
    info = widen_checkpoint(src, dst, 16)
    assert (info["from_m"], info["m"], info["step"]) == (8, 16, 7)
    a, b = (torch.load(p, weights_only=True) for p in (src, dst))
    assert config_from_json(b["config"]).m == 16 and "optimizer" not in b and b["step"] == 7
    assert "widened" in json.loads(b["stages"])[-1]
    old, new = build_model("hyperprior", 8, 8, 3).eval(), build_model("hyperprior", 8, 16, 3).eval()
    old.load_state_dict(a["model"])
    new.load_state_dict(b["model"])
    x = _images()
    with torch.no_grad():
        for q in range(3):
            ro, rn = old(x, q), new(x, q)
            assert torch.equal(ro["x_hat"], rn["x_hat"])
            bits_old = sum(-torch.log2(p).sum() for p in ro["likelihoods"])
            bits_new = sum(-torch.log2(p).sum() for p in rn["likelihoods"])
            assert float(bits_new) == pytest.approx(float(bits_old), rel=1e-4, abs=0.5)
            # The new channels are not dead: g_a gives them a (small) signal and g_s listens.
            y = new.analysis(x, q)[:, 8:]
            assert float(y.abs().max()) > 0 and float(new.g_s[0].weight[8:].abs().max()) > 0


def test_widened_channels_learn(tmp_path: Path) -> None:
    """A few training steps move the new channels' weights on both sides of the latent."""
    src, dst = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    _small_checkpoint(src)
    widen_checkpoint(src, dst, 16)
    model = build_model("hyperprior", 8, 16, 3)
    model.load_state_dict(torch.load(dst, weights_only=True)["model"])
    model.ste = False
    before = {k: model.state_dict()[k].clone() for k in ("g_a.6.weight", "g_s.0.weight", "h_a.0.weight")}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = _images()
    for step in range(3):
        loss, _, _ = rd_loss(model, x, step % 3, 0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    assert not torch.equal(after["g_a.6.weight"][8:], before["g_a.6.weight"][8:])
    assert not torch.equal(after["g_s.0.weight"][8:], before["g_s.0.weight"][8:])
    assert not torch.equal(after["h_a.0.weight"][:, 8:], before["h_a.0.weight"][:, 8:])


def test_widening_keeps_old_rows_and_refuses_to_narrow(tmp_path: Path) -> None:
    src = tmp_path / "a.ckpt"
    state = _small_checkpoint(src)["model"]
    wide = widened_state(state, 8, 3, 4)
    assert torch.equal(wide["g_a.6.weight"][:8], state["g_a.6.weight"])
    assert torch.equal(wide["h_s.4.weight"][:8], state["h_s.4.weight"][:8])  # log scales
    assert torch.equal(wide["h_s.4.weight"][12:20], state["h_s.4.weight"][8:])  # means
    assert torch.equal(wide["log_gain"][:, :8], state["log_gain"])
    blocks = wide["density_y.matrices.0"].reshape(3, 12, *state["density_y.matrices.0"].shape[1:])
    assert torch.equal(blocks[:, :8].reshape(24, -1), state["density_y.matrices.0"].reshape(24, -1))
    with pytest.raises(ValueError, match="M < 8"):
        widen_checkpoint(src, tmp_path / "b.ckpt", 8)


def test_widened_checkpoint_exports_to_a_working_codec(tmp_path: Path) -> None:
    """All-zero weight rows (the new h_s outputs) quantise without breaking the exactness bound."""
    from recodec.codecs.learned.codec import codec_for_weights
    from recodec.codecs.learned.export import export_checkpoint

    src, dst = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    _small_checkpoint(src)
    widen_checkpoint(src, dst, 16)
    calibration = [np.asarray(_images(1, 64)[0].permute(1, 2, 0).numpy() * 255, dtype=np.uint8) for _ in range(2)]
    path = export_checkpoint(str(dst), str(tmp_path / "w"), calibration, name="hyperprior")["path"]
    codec = codec_for_weights("hyperprior", path)
    img = calibration[0]
    out = codec.decode(codec.encode(img, quality=2))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_model_card_labels_the_widening_and_the_ladder_extension(tmp_path: Path) -> None:
    from recodec.tasks.train import stage_table

    src, dst = tmp_path / "a.ckpt", tmp_path / "b.ckpt"
    _small_checkpoint(src)
    widen_checkpoint(src, dst, 16)
    ladder = {"ladder_extension": [0.00025, 0.0005], "ladder_steps": 1500, "pixels": 2e6, "seconds": 9.0,
              "device": "cpu", "precision": "bf16", "threads": 1, "batch": 8, "crop": 128, "status": "done"}
    lines = stage_table([ladder, *json.loads(torch.load(dst, weights_only=True)["stages"])])
    assert any("M 8 -> 16 at step 7" in line and "None" not in line for line in lines)
    row = next(line for line in lines if "ladder extension" in line)
    assert "1500 steps on lambdas 0.00025, 0.0005" in row and "None" not in row and "2.0 M" in row
