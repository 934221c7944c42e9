"""The study's own RTRL and UORO: exact and unbiased, as the algorithms promise."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.benchmark_scripts import load_benchmark

S = load_benchmark("rnn_training_study")


def test_rtrl_gradient_equals_full_bptt() -> None:
    xs, ys = S.delay_streams(2, 7, seed=5)
    m, out = xs.shape[-1], ys.shape[-1]
    p, q = S.init_params(S.HIDDEN, m, out, seed=1)
    rtrl = S.Rtrl(2, S.HIDDEN, S.sizes(S.HIDDEN, m, out)[0])
    gp_sum, gq_sum = torch.zeros_like(p), torch.zeros_like(q)
    for t in range(xs.shape[0]):
        _, (gp, gq) = rtrl.step(p, q, xs[t], ys[t])
        gp_sum += gp
        gq_sum += gq
    pp, qq = p.clone().requires_grad_(True), q.clone().requires_grad_(True)
    h, total = torch.zeros(2, S.HIDDEN, dtype=torch.float64), 0.0
    for t in range(xs.shape[0]):
        h = torch.vmap(lambda h1, x1: S.cell(pp, h1, x1))(h, xs[t])
        total = total + S.step_loss(qq, h, ys[t])
    ep, eq = torch.autograd.grad(total, (pp, qq))
    assert torch.allclose(gp_sum, ep, rtol=1e-9, atol=1e-12)
    assert torch.allclose(gq_sum, eq, rtol=1e-9, atol=1e-12)


def test_uoro_is_unbiased_but_noisy_and_truncation_is_biased() -> None:
    r = S.true_and_estimates(length=6, repeats=3000, seed=11)
    g, draws = r["exact"], r["uoro"]
    err2 = ((draws - g) ** 2).sum(1)
    # If unbiased, ||mean - g||^2 has expectation E||d - g||^2 / R (fixed seed: deterministic).
    expected = float(err2.mean()) / draws.shape[0]
    gap = float(((draws.mean(0) - g) ** 2).sum())
    assert gap < 3 * expected
    assert float(err2.mean()) > 0.05 * float((g**2).sum())  # a single draw is noisy
    # Power of the test: TBPTT(1)'s gradient is off by far more than the UORO mean's noise.
    assert float(((r["tbptt"][1] - g) ** 2).sum()) > 10 * expected
    assert math.isfinite(gap)


def test_study_runs_end_to_end_on_a_tiny_budget(tmp_path: Path) -> None:
    runs = [S.train_run("delay", algo, opt, lr, 12, 2) for algo in ("tbptt-4", "rtrl", "uoro")
            for opt, lr in (("sgd", 0.5), ("adam", 5e-3))]
    rows = S.summarise(runs, 4)
    assert len(rows) == 6 and all(r["state_floats"] > 0 for r in rows)
    # Memory ordering the algorithms are known for: RTRL's n x P sensitivity dwarfs UORO's n + P.
    floats = {r["algo"]: r["state_floats"] for r in rows}
    assert floats["rtrl"] > 10 * floats["uoro"] > 10 * floats["tbptt-4"] / 10
    S.plot(runs, str(tmp_path / "p.png"), 3)
    assert (tmp_path / "p.png").stat().st_size > 1000


@pytest.mark.parametrize("task", ["patches"])
def test_patch_task_reads_real_photos(task: str) -> None:
    if not S.DATA.exists():
        pytest.skip("no shared data")
    xs, ys = S.patch_streams(2, 10, seed=0)
    assert xs.shape == (10, 2, 16) and torch.equal(xs[1:], ys[:-1])
