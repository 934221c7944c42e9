"""Training of the generative decoders: a few steps, resume, export with pin and model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recodec.codecs.generative import training as T  # noqa: E402
from recodec.codecs.generative.decoding import load_net  # noqa: E402
from recodec.codecs.generative.nets import rate_level  # noqa: E402


@pytest.fixture
def data(tmp_path: Path) -> str:
    from PIL import Image

    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        arr = rng.integers(0, 255, (260, 270, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"img{i}x.png")
    return str(folder)


def test_restorer_trains_resumes_and_exports(tmp_path: Path, data: str) -> None:
    out = tmp_path / "run"
    first = T.train("restore-jpeg", out, data, steps=2, batch=2, crop=32, width=8, bank=2, precision="fp32")
    assert first["step"] == 2 and (out / "checkpoint.pt").exists() and (out / "pairs-jpeg.npz").exists()
    second = T.train("restore-jpeg", out, data, steps=3, batch=2, crop=32, width=8, bank=2, precision="fp32")
    assert second["step"] == 3 and [(s["from_step"], s["to_step"]) for s in second["stages"]] == [(0, 2), (2, 3)]
    assert second["stages"][1]["pixels"] == 2 * 32 * 32 and second["stages"][1]["device"] == "cpu"
    weights = tmp_path / "weights"
    weights.mkdir()
    digest = T.export("restore-jpeg", out, weights)
    assert json.loads((weights / "pins.json").read_text()) == {"restore-jpeg.pt": digest}
    net, sha = load_net("restore-jpeg", "cpu", weights)
    assert sha == digest and net.width == 8
    card = T.write_card(weights).read_text()
    assert digest in card and "| 2 | 2-3 | 2 x 32^2 |" in card


def test_gan_steps_move_generator_and_discriminator(tmp_path: Path) -> None:
    out = tmp_path / "gan"
    out.mkdir()
    rng = np.random.default_rng(1)
    bank = rng.integers(0, 255, (2, T.BANK_SIZE, T.BANK_SIZE, 3), dtype=np.uint8)
    from recodec.codecs.learned.codec import DEFAULT_WEIGHTS
    from recodec.codecs.weights import pinned_sha256

    pin = np.frombuffer(bytes.fromhex(pinned_sha256(DEFAULT_WEIGHTS)), dtype=np.uint8)
    qualities = np.array(T.HYPERPRIOR_QUALITIES)
    recon = np.repeat(bank[None] // 2 + 60, len(qualities), axis=0)
    np.savez(out / "pairs-hyperprior.npz", bank=bank, recon=recon, weights=pin, qualities=qualities)
    parts = T.build("gan-hyperprior", 8, "cpu")
    before = {k: [p.detach().clone() for p in parts[k].parameters()] for k in ("net", "disc")}
    arrays = T.load_pairs(out, "unused", "hyperprior", 2)
    x, y, levels = T.sample_batch(arrays, "hyperprior", 2, 32, rng)
    assert set(levels.tolist()) <= {rate_level(q) for q in T.HYPERPRIOR_QUALITIES}
    logs = T.train_step("gan-hyperprior", parts, T.to_batch(x, "cpu"), T.to_batch(y, "cpu"), "fp32",
                        torch.from_numpy(levels))
    assert {"loss", "d", "mse", "adv", "fm", "band"} <= set(logs)
    for k in ("net", "disc"):
        assert any(not torch.equal(a, b) for a, b in zip(before[k], parts[k].parameters()))


def test_recodec_train_model_runs_a_generative_recipe(tmp_path: Path, data: str) -> None:
    from click.testing import CliRunner

    from recodec.cli import GENERATIVE_MODELS, cli

    assert set(GENERATIVE_MODELS) == set(T.RECIPES)
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", data, str(out), "--model", "restore-jpeg", "--steps", "1",
                                      "--batch-size", "1", "--crop", "32", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    pins = json.loads((out / "weights" / "pins.json").read_text())
    assert json.loads(result.output)["sha256"] == pins["restore-jpeg.pt"]
    assert (out / "weights" / "MODEL_CARD.md").exists()


def test_hyperprior_pairs_are_remade_for_other_qualities(tmp_path: Path, monkeypatch) -> None:
    """A cache of decodes at other rate points (the ladder before its extension) is not reused."""
    from recodec.codecs.learned.codec import DEFAULT_WEIGHTS
    from recodec.codecs.weights import pinned_sha256

    bank = np.zeros((2, T.BANK_SIZE, T.BANK_SIZE, 3), dtype=np.uint8)
    pin = np.frombuffer(bytes.fromhex(pinned_sha256(DEFAULT_WEIGHTS)), dtype=np.uint8)
    np.savez(tmp_path / "pairs-hyperprior.npz", bank=bank, recon=bank[None].repeat(2, 0), weights=pin)
    calls = []
    monkeypatch.setattr(T, "hyperprior_pairs", lambda b: calls.append(len(b)) or np.ones(
        (len(T.HYPERPRIOR_QUALITIES), *b.shape), dtype=np.uint8))
    arrays = T.load_pairs(tmp_path, "unused", "hyperprior", 2)
    assert calls == [2] and arrays["recon"].shape[0] == len(T.HYPERPRIOR_QUALITIES)
    assert list(arrays["qualities"]) == list(T.HYPERPRIOR_QUALITIES)
    assert T.load_pairs(tmp_path, "unused", "hyperprior", 2)["recon"].min() == 1 and calls == [2]


def test_warm_start_from_a_shipped_file_keeps_its_steps_and_stages(tmp_path: Path) -> None:
    from recodec.digest import sha256_file

    weights = tmp_path / "gan-hyperprior.pt"
    weights.write_bytes(b"weights")
    stages = [{"from_step": 0, "to_step": 7}]
    (tmp_path / "stages.json").write_text(json.dumps({"gan-hyperprior": {
        "sha256": sha256_file(weights), "steps": 7, "stages": stages}}))
    assert T.shipped_history("gan-hyperprior", weights, tmp_path) == {"step": 7, "stages": stages}
    other = tmp_path / "other.pt"
    other.write_bytes(b"other")
    assert T.shipped_history("gan-hyperprior", other, tmp_path) == {}


def test_band_target_runs_from_the_mse_decode_to_the_original() -> None:
    """Realism is a dial: the band-energy target interpolates (in log) between the two images."""
    from recodec.hfenergy import band_energies

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    y = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # a blurred "MSE decode"
    lx, ly = torch.log(band_energies(x) + 1e-6), torch.log(band_energies(y) + 1e-6)
    for r in (0.0, 0.5, 1.0):
        target = T.band_target(x, y, torch.full((2,), r))
        assert torch.allclose(target, (1 - r) * ly + r * lx, atol=1e-6)
    assert bool((lx[:, 0] > ly[:, 0] + 1).all())  # blurring removed fine-band energy: the targets differ


def test_band_energies_per_block_see_where_the_detail_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per block, grain in a flat half cannot pay for detail missing in the other half."""
    from recodec.hfenergy import band_energies

    torch.manual_seed(0)
    noise = torch.rand(1, 3, 64, 64)
    left = torch.full((1, 3, 64, 64), 0.5)
    left[..., :32] = noise[..., :32]  # detail on the left, flat on the right
    right = torch.full((1, 3, 64, 64), 0.5)
    right[..., 32:] = noise[..., 32:]  # the same detail moved to the right
    whole = band_energies(left), band_energies(right)
    assert torch.allclose(whole[0], whole[1], rtol=0.25)  # one number per crop cannot tell them apart
    blocks = band_energies(left, 16), band_energies(right, 16)
    assert blocks[0].shape == (1, 3, 4, 4)
    assert bool((blocks[0][0, 0, :, 0] > 100 * blocks[0][0, 0, :, 3]).all())  # the left edge column vs the flat right one
    assert torch.allclose(blocks[0].mean((2, 3)), whole[0], rtol=1e-4)
    monkeypatch.setattr(T, "BAND_TILE", 16)
    target = T.band_target(left, left, torch.ones(1))
    assert target.shape == (1, 3, 4, 4)
    assert float(((T.log_bands(right) - target) ** 2).mean()) > 10  # per block the swap is far off
    monkeypatch.setattr(T, "BAND_TILE", None)
    assert float(((T.log_bands(right) - T.band_target(left, left, torch.ones(1))) ** 2).mean()) < 0.05


def test_band_shape_tells_specks_from_texture(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same band energy, different spread: only the mean absolute band-pass tells them apart."""
    torch.manual_seed(0)
    texture = 0.5 + 0.05 * torch.randn(1, 3, 64, 64)
    specks = torch.full((1, 3, 64, 64), 0.5)
    specks[..., ::8, ::8] = 0.5 + 0.05 * 8 * torch.randn(1, 3, 8, 8)  # 1/64 of the pixels, 8x the amplitude
    monkeypatch.setattr(T, "BAND_SHAPE", False)
    energy_gap = (T.log_bands(texture) - T.log_bands(specks)).abs()
    assert T.log_bands(texture).shape == (1, 3) and float(energy_gap[0, 0]) < 0.5
    monkeypatch.setattr(T, "BAND_SHAPE", True)
    both = T.log_bands(texture), T.log_bands(specks)
    assert both[0].shape == (1, 6) and torch.allclose(both[0][:, :3], T.log_bands(texture)[:, :3])
    assert float(both[0][0, 3] - both[1][0, 3]) > 1.0  # the specks' mean |fine band| is far smaller


def test_generator_from_file_reads_checkpoints_and_shipped_files(tmp_path: Path) -> None:
    """The checks of runs in progress load either format into the same network."""
    import numpy as np

    from recodec.codecs.generative.decoding import WEIGHTS_DIR

    shipped = T.generator_from_file(WEIGHTS_DIR / "gan-hyperprior.pt")
    parts = T.build("gan-hyperprior", 32, "cpu")
    parts["ema"].load_state_dict(shipped.state_dict())
    T.save_checkpoint(tmp_path / "checkpoint.pt", parts, {"recipe": "gan-hyperprior", "width": 32, "step": 3,
                                                          "stages": []}, np.random.default_rng(0))
    for part, ref in (("ema", shipped), ("net", parts["net"])):
        loaded = T.generator_from_file(tmp_path / "checkpoint.pt", part)
        assert not loaded.training
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), ref.state_dict().values()))


def test_the_generator_average_follows_the_network_slowly() -> None:
    from recodec.codecs.generative.nets import Generator

    net, ema = Generator(4), Generator(4)
    ema.load_state_dict(net.state_dict())
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ema.parameters()]
    T.update_ema(ema, net, decay=0.9)
    for b, e, p in zip(before, ema.parameters(), net.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p)


def test_a_later_stage_can_lower_the_learning_rate(tmp_path: Path, data: str) -> None:
    out = tmp_path / "run"
    T.train("restore-jpeg", out, data, steps=1, batch=1, crop=32, width=8, bank=2, precision="fp32")
    meta = T.train("restore-jpeg", out, data, steps=2, batch=1, crop=32, width=8, bank=2, precision="fp32", lr=1e-5)
    assert [s["lr"] for s in meta["stages"]] == [T.RECIPES["restore-jpeg"]["lr"], 1e-5]
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["opt"]["param_groups"][0]["lr"] == 1e-5
    assert T.stage_settings(meta["stages"][1]).startswith("lr=1e-05") and T.stage_settings({}) == "-"


def fake_satellite_train(root: Path) -> Path:
    """A satellite-train/ look-alike: NAIP files of two train years and one held-out year, Landsat 8 bands."""
    import tifffile

    root.mkdir()
    rng = np.random.default_rng(3)
    for year in ("2009", "2015", "2017"):
        tifffile.imwrite(root / f"naip_m_4709963_se_14_1_{year}0701.tif",
                         rng.integers(0, 255, (300, 280, 4), dtype=np.uint8), photometric="rgb", extrasamples=[0])
    for band in range(2, 8):
        tifffile.imwrite(root / f"l8_cloudy_B{band}.tif", rng.integers(5000, 30000, (270, 260), dtype=np.uint16) + band)
    return root


def test_training_scenes_leave_out_the_heldout_years(tmp_path: Path) -> None:
    from recodec.codecs.generative import scenes

    root = fake_satellite_train(tmp_path / "sat")
    names = [name for name, _ in scenes.training_scenes(root)]
    assert [n for n in names if n.startswith("naip")] == ["naip_m_4709963_se_14_1_20090701.tif",
                                                            "naip_m_4709963_se_14_1_20150701.tif"]
    assert [n for n, _ in scenes.naip_scenes(root, heldout=True)] == ["naip_m_4709963_se_14_1_20170701.tif"]
    assert len(names) == 2 + len(scenes.LANDSAT8_COMPOSITES)
    view = dict(scenes.training_scenes(root))["l8_cloudy_B432"]
    assert view.dtype == np.uint8 and view.shape == (270, 260, 3) and view.min() == 0 and view.max() == 255
    bank = scenes.scene_bank(root, 2, 256)
    assert bank.shape == (2 * len(names), 256, 256, 3) and bank.dtype == np.uint8


def test_scene_crops_join_the_bank_once_and_are_drawn_at_their_share(tmp_path: Path, monkeypatch) -> None:
    """--scenes appends scene crops to a cached bank, decodes only those, and samples them at SCENE_SHARE."""
    from recodec.codecs.generative.codecs import HYPERPRIOR_SHA256

    root = fake_satellite_train(tmp_path / "sat")
    bank = np.zeros((3, T.BANK_SIZE, T.BANK_SIZE, 3), dtype=np.uint8)
    pin = np.frombuffer(bytes.fromhex(HYPERPRIOR_SHA256), dtype=np.uint8)
    qualities = np.array(T.HYPERPRIOR_QUALITIES)
    np.savez(tmp_path / "pairs-hyperprior.npz", bank=bank, recon=bank[None].repeat(len(qualities), 0),
             weights=pin, qualities=qualities)
    calls = []
    monkeypatch.setattr(T, "hyperprior_pairs", lambda b: calls.append(len(b)) or np.ones(
        (len(T.HYPERPRIOR_QUALITIES), *b.shape), dtype=np.uint8))
    monkeypatch.setattr(T, "SCENE_CROPS", 2)
    arrays = T.load_pairs(tmp_path, "unused", "hyperprior", 3, root)
    extra = 2 * (2 + 4)
    assert calls == [extra] and arrays["recon"].shape[1] == 3 + extra
    assert arrays["scene"].tolist() == [False] * 3 + [True] * extra
    assert T.load_pairs(tmp_path, "unused", "hyperprior", 3, root)["scene"].sum() == extra and calls == [extra]
    monkeypatch.setattr(T, "SCENE_SHARE", 0.25)
    rng = np.random.default_rng(0)
    drawn = np.array([arrays["scene"][T.pick_crop(arrays, rng)] for _ in range(4000)])
    assert abs(drawn.mean() - 0.25) < 0.03
    assert T.pick_crop({"bank": bank}, rng) in range(3)


def test_a_stage_with_scenes_records_them(tmp_path: Path, monkeypatch) -> None:
    """The stage list (model card) says how many scene crops a stage had and at what share."""
    root = fake_satellite_train(tmp_path / "sat")
    monkeypatch.setattr(T, "hyperprior_pairs", lambda b: np.repeat(b[None] // 2, len(T.HYPERPRIOR_QUALITIES), 0))
    monkeypatch.setattr(T, "SCENE_CROPS", 1)
    out = tmp_path / "run"
    out.mkdir()
    bank = np.random.default_rng(2).integers(0, 255, (2, T.BANK_SIZE, T.BANK_SIZE, 3), dtype=np.uint8)
    np.savez(out / "pairs-hyperprior.npz", bank=bank)
    meta = T.train("gan-hyperprior", out, "unused", steps=1, batch=2, crop=32, width=8, precision="fp32", scenes=root)
    stage = meta["stages"][-1]
    assert stage["scene_crops"] == 2 + 4 and stage["scene_share"] == T.SCENE_SHARE and stage["bank"] == 2 + 6
    assert "scene_crops=6" in T.stage_settings(stage)
