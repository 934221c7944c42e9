"""The encoder-study script (benchmarks/overfitted_schedule.py): variants patch the encoder and put it back."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recodec.codecs.overfit import encoder
from recodec.codecs.overfit.network import OverfitModel
from tests.benchmark_scripts import load_benchmark

S = load_benchmark("overfitted_schedule")


def test_a_variant_patches_the_encoder_only_while_it_runs() -> None:
    fast, prime, cap = encoder.PRESETS["fast"], encoder._prime_bits, encoder.GAIN_CAP
    variant = S.Variant(400, {"lr": 0.5}, {"GAIN_CAP": math.inf, "_prime_bits": S._no_priming})
    with pytest.raises(RuntimeError), S.patched(variant):
        assert encoder.PRESETS["fast"].lr == 0.5 and encoder.GAIN_CAP == math.inf
        assert encoder.latent_gain(100.0) > 40  # uncapped
        raise RuntimeError("a failed fit")
    assert encoder.PRESETS["fast"] is fast and encoder._prime_bits is prime and encoder.GAIN_CAP == cap


def test_priming_variants_scale_the_patch_bits() -> None:
    torch.manual_seed(0)
    model = OverfitModel(encoder.PRESETS["fast"].arch(3, 200, 300), 200, 300)
    with torch.no_grad():
        real = float(encoder._prime_bits(model, 0, torch.Generator().manual_seed(1)))
    with S.patched(S.PRIMING["64x64 patch counted once (session 20)"]), torch.no_grad():
        once = float(encoder._prime_bits(model, 0, torch.Generator().manual_seed(1)))
    assert real == pytest.approx(once * 200 * 300 / 64**2, rel=1e-5)  # the default stands for the whole grid
    assert float(S._no_priming(model, 0, None)) == 0.0
    assert list(S.STUDIES) == ["schedule", "priming", "gain", "arch", "noise"]
    assert all(next(iter(S.STUDIES[k][2])).endswith("(fast)") for k in ("priming", "gain", "arch", "noise"))  # reference: the preset


def test_score_uses_the_pipelines_peak_and_refuses_a_shape_mismatch() -> None:
    img = np.full((8, 8, 1), 5000, np.uint16)
    img[0, 0, 0] = 6000  # data range 1000
    out = img + np.uint16(10)
    row = S._score(img, b"x" * 16, out, 0.3)
    assert row["psnr"] == pytest.approx(10 * math.log10(1000**2 / 100))
    assert row["loss"] == pytest.approx(0.3 * 255**2 * 100 / 1000**2 + 2.0)
    with pytest.raises(ValueError, match="shape"):
        S._score(img, b"x", out[:, :, 0], 0.3)
    assert S.jpeg_loss(img, 0.3) is None  # JPEG is the photos' reference only


def test_parts_split_a_study_between_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    img = np.zeros((4, 4, 3), np.uint8)
    study = (lambda: [("a", img), ("b", img)], (0.1, 0.2), {"v": S.Variant(), "w": S.Variant(400)}, "log")
    monkeypatch.setitem(S.STUDIES, "toy", study)
    every = [(n, lm, label) for n, _, lm, label, _ in S.jobs("toy")]
    parts = [[(n, lm, label) for n, _, lm, label, _ in S.jobs("toy", f"{k}/3")] for k in (1, 2, 3)]
    assert len(every) == 8 and sorted(sum(parts, [])) == sorted(every)  # each fit in exactly one part
    with pytest.raises(ValueError, match="part"):
        S.jobs("toy", "4/3")


def test_arch_variants_change_only_the_network_sizes() -> None:
    fast = encoder.PRESETS["fast"]
    for variant in S.ARCH.values():
        with S.patched(variant):
            arch = encoder.PRESETS["fast"].arch(3, 384, 384)
            assert encoder.PRESETS["fast"].iterations == fast.iterations and arch.levels == 7
            assert (arch.hidden, arch.convs, arch.arm_hidden) == (variant.preset.get("hidden", fast.hidden),
                                                                 variant.preset.get("convs", fast.convs),
                                                                 variant.preset.get("arm_hidden", fast.arm_hidden))
