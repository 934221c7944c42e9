"""The encoder's optimisation pieces: the float model's layouts and the coarse-to-fine start."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from recodec.codecs.overfit import encoder as E
from recodec.codecs.overfit import network as N


def _model(h: int = 21, w: int = 30) -> N.OverfitModel:
    torch.manual_seed(0)
    model = N.OverfitModel(E.PRESETS["fast"].arch(3, h, w), h, w)
    with torch.no_grad():
        for y in model.latents:
            y.copy_(torch.randint(-4, 5, y.shape).float())
    return model


def test_contexts_are_the_causal_neighbours_with_zeros_outside() -> None:
    y = torch.arange(1, 13, dtype=torch.float32).reshape(1, 1, 3, 4)
    ctx = N.contexts(y)
    assert ctx.shape == (len(N.CONTEXT), 12)
    for k, (dy, dx) in enumerate(N.CONTEXT):
        for i in range(3):
            for j in range(4):
                inside = 0 <= i + dy < 3 and 0 <= j + dx < 4
                expected = float(y[0, 0, i + dy, j + dx]) if inside else 0.0
                assert float(ctx[k, i * 4 + j]) == expected


def test_context_model_matches_a_per_latent_evaluation() -> None:
    model = _model()
    for layer in model.arm.layers:
        torch.nn.init.normal_(layer.weight, 0, 0.3)
    y = model.quantized("round")[0]
    mu, index = model.arm(N.contexts(y))
    rows = N.contexts(y).T  # one latent per row, as a textbook MLP
    for layer in model.arm.layers[:-1]:
        rows = torch.relu(rows @ layer.weight.T + layer.bias)
    ref = rows @ model.arm.layers[-1].weight.T + model.arm.layers[-1].bias
    torch.testing.assert_close(mu, ref[:, 0])
    torch.testing.assert_close(index, ref[:, 1])


@pytest.mark.parametrize("skip", [1, 2])
def test_coarse_forward_runs_at_the_level_grid(skip: int) -> None:
    model = _model()
    with torch.no_grad():
        rec, bits = model("round", skip=skip)
        full_bits = model("round")[1]
    assert rec.shape[2:] == model.latents[skip].shape[2:]
    assert 0 < float(bits) < float(full_bits)  # the skipped levels cost nothing


def test_coarse_problem_averages_valid_pixels_only() -> None:
    x = torch.zeros(1, 1, 3, 5)
    x[..., 0, 0], x[..., 0, 1], x[..., 1, 0] = 10.0, 20.0, 999.0
    valid = torch.ones(1, 1, 3, 5)
    valid[..., 1, 0] = 0  # nodata: must not leak into the average
    p = E.Problem(x, valid, 1.0, 0.01, 15)
    sub = E.coarse_problem(p, 1)
    assert sub.x.shape[2:] == (2, 3)  # ceil halving, as the latent grids
    assert float(sub.x[0, 0, 0, 0]) == pytest.approx(10.0)  # (10 + 20 + 0) / 3 valid pixels
    assert float(sub.valid[0, 0, 0, 0]) == pytest.approx(0.75)
    assert float(sub.valid[0, 0, 1, 2]) == pytest.approx(1.0)  # a 1x1 corner block, fully valid


def test_warm_starts_skip_the_coarse_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    skips: list[int] = []
    real = E._step

    def spy(model, opt, p, mode, gen, skip):
        skips.append(skip)
        return real(model, opt, p, mode, gen, skip)

    monkeypatch.setattr(E, "_step", spy)
    h, w = 16, 20
    p = E.Problem(torch.rand(1, 3, h, w), torch.ones(1, 1, h, w), 1.0, 0.01, h * w)
    preset = replace(E.PRESETS["fast"], coarse=((1, 0.5),))
    arch = preset.arch(3, h, w)
    cold = E.fit(p, preset, arch, iterations=8, device="cpu")
    # half the budget at 1/1 resolution, half at 1/2; a 16x20 image's steps all cost about the same
    assert skips.count(1) == 4 and skips.count(0) == 4
    skips.clear()
    E.fit(p, preset, arch, iterations=8, device="cpu", warm=cold.state)
    assert skips and set(skips) == {0}


_FAULTS = """
import resource, sys, torch
from recodec.codecs.overfit import encoder as E
if sys.argv[1] == "keep" and not E.keep_freed_memory():
    print(-1); sys.exit()
x = torch.ones(4 << 20)
def step():  # four 16 MiB activations at once, freed together: a training step's pattern
    y = [x * 2.0 for _ in range(4)]
    del y
step()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_activations_are_reused_not_faulted_in_again() -> None:
    resource = pytest.importorskip("resource")

    def faults(mode: str) -> int:  # a fresh process each: the allocator's state is process-wide
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    kept = faults("keep")
    if kept < 0:
        pytest.skip("no glibc mallopt here")
    # 0 in most processes, 8,192-12,288 in some (address-space layout).  glibc's default faults in
    # about 163,500 pages here (every 16 MiB block afresh), but its dynamic mmap threshold sometimes
    # adapts on its own (8,192 in one run), so the bar is the pages the ten steps touch, not the default.
    touched = 10 * 4 * (16 << 20) // resource.getpagesize()
    assert kept * 5 < touched


@pytest.mark.parametrize(("lmbda", "gain"), [(0.0008, 1.0), (0.05, 1.0), (0.1, 2**0.5), (0.2, 2.0), (0.8, 4.0), (12.0, 4.0)])
def test_latent_gain_grows_above_the_knee_and_is_capped(lmbda: float, gain: float) -> None:
    assert E.latent_gain(lmbda) == pytest.approx(gain)


def test_coarse_stage_teaches_the_context_model_the_next_grids_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    h, w = 32, 32
    torch.manual_seed(0)
    p = E.Problem(torch.rand(1, 3, h, w), torch.ones(1, 1, h, w), 1.0, 0.05, h * w)
    sub = E.coarse_problem(p, 1)
    preset = E.PRESETS["fast"]
    price = E._prime_bits

    def next_grid_bits() -> float:
        torch.manual_seed(0)
        model = N.OverfitModel(preset.arch(3, h, w), h, w)
        opt = torch.optim.Adam([{"params": list(model.latents.parameters()), "lr": preset.lr},
                                {"params": [*model.synthesis.parameters(), *model.arm.parameters()], "lr": preset.lr_net}])
        gen = torch.Generator().manual_seed(0)
        for _ in range(150):
            E._step(model, opt, sub, "noise", gen, 1)
        assert not model.latents[0].detach().any()  # the finer grid itself is untouched
        with torch.no_grad():
            return float(price(model, 0, torch.Generator().manual_seed(1))) / (h * w)

    primed = next_grid_bits()
    monkeypatch.setattr(E, "_prime_bits", lambda *args: torch.zeros(()))
    plain = next_grid_bits()
    assert primed < 0.5 * plain, (primed, plain)  # about 0.37 against 1.34 bits per latent


@pytest.mark.parametrize(("skip", "pixels", "cost"), [(1, 768 * 512, 0.25), (2, 768 * 512, 0.125),
                                                      (2, 256 * 256, 0.125), (2, 37 * 53, 0.8)])
def test_coarse_steps_of_small_images_cost_nearly_a_full_step(skip: int, pixels: int, cost: float) -> None:
    assert E.coarse_step_cost(skip, pixels) == pytest.approx(cost, abs=0.01)


def test_per_layer_precisions_reach_each_layers_own_optimum() -> None:
    targets = [5, 9, 7, 8]

    def cost(bits: list[int]) -> float:  # separable, each layer's optimum two bits off the best uniform one
        return sum((b - t) ** 2 for b, t in zip(bits, targets))

    assert E._descend(cost, 4, (6, 7, 8, 9, 10)) == targets


def test_quantisation_choice_is_no_worse_than_any_single_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.codecs.overfit.bitstream import write_params
    from tests.benchmark_scripts import load_benchmark

    quant = load_benchmark("overfitted_quant")

    h, w = 24, 32
    torch.manual_seed(1)
    p = E.Problem(torch.rand(1, 3, h, w), torch.ones(1, 1, h, w), 1.0, 0.02, h * w)
    preset = E.PRESETS["fast"]
    model = _model(h, w)
    E._train(model, p, preset, 30, "cpu", cold=True)

    def exact_loss(fitted: E.Fitted) -> float:
        return quant.exact_loss(fitted, p)["loss"]

    chosen = E._choose(model, p, preset)
    assert chosen.params == write_params(chosen.net)
    singles = []
    for b in preset.bits:
        monkeypatch.setattr(E, "_descend", lambda cost, layers, start, b=b: [b] * layers)
        singles.append(exact_loss(E._choose(model, p, preset)))
    # each group starts from its best single precision; padding the block to bytes costs < 8 bits
    assert exact_loss(chosen) <= min(singles) + 8 / p.pixels, (exact_loss(chosen), singles)


def test_pricing_distinct_context_value_pairs_equals_pricing_every_latent() -> None:
    import numpy as np

    from recodec.codecs.overfit import latents as L
    from recodec.codecs.overfit import tables as T
    from recodec.codecs.overfit.exact import ExactArm, QLayer, QNet

    h, w = 40, 56
    rng = np.random.default_rng(3)
    arch = E.PRESETS["fast"].arch(3, h, w)
    plan = L.make_plan(h, w, arch.levels)
    grids = [np.where(rng.random(s) < 0.95, 0, rng.integers(-3, 4, s)) for s in plan.shapes]  # zeros amid zeros
    grids[0][0, 0] = 2000  # an escape (beyond every width class)
    buf = L.fill(plan, grids)
    hid = arch.arm_hidden
    net = QNet(arch, [], [], [QLayer(rng.integers(-40, 41, (hid, 12)), rng.integers(-99, 99, hid), 6),
                              QLayer(rng.integers(-40, 41, (hid, hid)), rng.integers(-99, 99, hid), 6),
                              QLayer(rng.integers(-40, 41, (2, hid)), np.array([0, 30 << 18]), 6)])
    arm = ExactArm(net)
    pairs = L.coded(plan, buf)
    assert pairs.counts.sum() == len(plan.order) and len(pairs.values) < len(plan.order) // 2
    # every latent priced on its own, as the range coder sees it
    mu, index = arm(buf[plan.order[:, None] + plan.offsets[plan.level]])
    row, cls, _, sym, escape = L._symbols(mu, index, buf[plan.order])
    t = T.tables()
    each = sum(float(16 - np.log2(t.counts[c][t.row_local[r], s])) for c, r, s in zip(cls, row, sym))
    assert escape.any()
    assert L.estimate_bits(plan, arm, buf) == pytest.approx(each + L.ESCAPE_BITS * int(escape.sum()), rel=1e-12)
