"""Training recurrent coders online: truncated BPTT vs RTRL vs UORO, with SGD and with Adam.

The survey's claims under test:

1. UORO (Tallec & Ollivier 2018) is unbiased but noisy;
2. RTRL and UORO do badly with adaptive optimisers such as Adam (Mali et al.);
3. UORO matches truncated BPTT on tasks with long dependencies.

The recurrent coder is a GRU (``HIDDEN`` units) small enough for exact RTRL.  Two tasks,
both streamed online (``batch`` independent streams, never reset):

* ``patches``: a predictive (DPCM-style) coder of gray 4x4 patches read in raster order
  from real photos; it predicts the next patch, the loss is the prediction MSE (the energy
  of the residual a coder would send);
* ``delay``: a long-dependency task: random +-1 inputs, the target at step t is the input
  at step t - DELAY (DELAY longer than the shortest truncations).

RTRL and UORO are implemented here in forward mode with ``torch.func``: RTRL carries the
full influence matrix J = dh/dtheta forward in time (J' = D_h J + D_theta; D_h by
forward-mode ``jacfwd``, the immediate D_theta by n vjps), UORO a rank-one
estimate s (x) theta~ with random signs nu (Tallec & Ollivier, Alg. 1: ``jvp`` for D_h s,
one ``vjp`` for nu^T D_theta).  Both update the parameters at every step; TBPTT(T) updates
every T steps with the gradient of the last T losses.

    python benchmarks/rnn_training_study.py --out docs/results/rnn_training_study.json \\
        --plot docs/img/rnn_training_study.png
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.func import jvp, vjp

HIDDEN = 16
PATCH = 4
DELAY = 4
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "train" / "cid22-512"

# -- the model: a GRU cell and a linear read-out, as flat parameter vectors ----------------------


def sizes(n: int, m: int, out: int) -> tuple[int, int]:
    """(recurrent parameter count, read-out parameter count)."""
    return 3 * n * m + 3 * n * n + 3 * n, out * n + out


def init_params(n: int, m: int, out: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (recurrent, read-out) parameters, uniform +-1/sqrt(n) like torch.nn.GRU."""
    g = torch.Generator().manual_seed(seed)
    pr, pq = sizes(n, m, out)
    k = 1 / math.sqrt(n)
    return ((torch.rand(pr, generator=g, dtype=torch.float64) * 2 - 1) * k,
            (torch.rand(pq, generator=g, dtype=torch.float64) * 2 - 1) * k)


def cell(p: torch.Tensor, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """One GRU step for one stream: h (n,), x (m,) -> h' (n,)."""
    n, m = h.shape[0], x.shape[0]
    wx = p[: 3 * n * m].view(3 * n, m)
    wh = p[3 * n * m: 3 * n * m + 3 * n * n].view(3 * n, n)
    b = p[3 * n * m + 3 * n * n:]
    gx, gh = wx @ x + b, wh @ h
    z = torch.sigmoid(gx[:n] + gh[:n])
    r = torch.sigmoid(gx[n:2 * n] + gh[n:2 * n])
    c = torch.tanh(gx[2 * n:] + r * gh[2 * n:])
    return (1 - z) * c + z * h


def readout(q: torch.Tensor, h: torch.Tensor, out: int) -> torch.Tensor:
    """Linear prediction from the state."""
    n = h.shape[-1]
    return h @ q[: out * n].view(out, n).T + q[out * n:]


def step_loss(q: torch.Tensor, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared prediction error of one step, summed over the batch / batch size."""
    return ((readout(q, h, y.shape[-1]) - y) ** 2).mean(dim=-1).mean()


def _loss_grads(q: torch.Tensor, h: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Loss, dL/dh (B, n) and dL/dq of one step."""
    h = h.detach().requires_grad_(True)
    q = q.detach().requires_grad_(True)
    loss = step_loss(q, h, y)
    gh, gq = torch.autograd.grad(loss, (h, q))
    return float(loss.detach()), gh, gq


# -- gradient algorithms: each consumes one step (x_t, y_t) and returns (loss, grads or None) ------


class Rtrl:
    """Real-time recurrent learning: exact forward propagation of J = dh/dp (B, n, P)."""

    def __init__(self, batch: int, n: int, pr: int) -> None:
        self.h = torch.zeros(batch, n, dtype=torch.float64)
        self.j = torch.zeros(batch, n, pr, dtype=torch.float64)
        self.eye = torch.eye(pr, dtype=torch.float64)

    def state_floats(self) -> int:
        """Floats the algorithm carries between steps."""
        return self.h.numel() + self.j.numel()

    def step(self, p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, Any]:
        def one(h: torch.Tensor, j: torch.Tensor, x1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # J' = D_h J + D_p, propagated forward in time.  D_h by forward mode (n jvps),
            # the immediate D_p by n vjps (cheaper than P jvps for the same matrix).
            d_h = torch.func.jacfwd(lambda hh: cell(p, hh, x1))(h)
            d_p = torch.func.jacrev(lambda pp: cell(pp, h, x1))(p)
            return cell(p, h, x1), d_h @ j + d_p

        self.h, self.j = torch.vmap(one)(self.h, self.j, x)
        loss, gh, gq = _loss_grads(q, self.h, y)
        return loss, (torch.einsum("bn,bnp->p", gh, self.j), gq)


class Uoro:
    """Unbiased online recurrent optimisation: J ~ s (x) theta~ with random-sign updates."""

    def __init__(self, batch: int, n: int, pr: int, seed: int, eps: float = 1e-7) -> None:
        self.h = torch.zeros(batch, n, dtype=torch.float64)
        self.s = torch.zeros(batch, n, dtype=torch.float64)
        self.t = torch.zeros(batch, pr, dtype=torch.float64)
        self.gen = torch.Generator().manual_seed(seed)
        self.eps = eps

    def state_floats(self) -> int:
        """Floats the algorithm carries between steps."""
        return self.h.numel() + self.s.numel() + self.t.numel()

    def step(self, p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, Any]:
        nu = torch.randint(0, 2, self.s.shape, generator=self.gen).to(torch.float64) * 2 - 1

        def one(h: torch.Tensor, s: torch.Tensor, t: torch.Tensor, x1: torch.Tensor,
                v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            h_new, ds = jvp(lambda hh: cell(p, hh, x1), (h,), (s,))      # forward mode: D_h s
            _, pull = vjp(lambda pp: cell(pp, h, x1), p)
            (dp,) = pull(v)                                               # nu^T D_p
            rho0 = torch.sqrt(t.norm() / (ds.norm() + self.eps)) + self.eps
            rho1 = torch.sqrt(dp.norm() / (v.norm() + self.eps)) + self.eps
            return h_new, rho0 * ds + rho1 * v, t / rho0 + dp / rho1

        self.h, self.s, self.t = torch.vmap(one)(self.h, self.s, self.t, x, nu)
        loss, gh, gq = _loss_grads(q, self.h, y)
        return loss, (torch.einsum("bn,bn,bp->p", gh, self.s, self.t), gq)


class Tbptt:
    """Truncated BPTT(T): back-propagate the last T losses every T steps, then detach."""

    def __init__(self, batch: int, n: int, truncation: int) -> None:
        self.h = torch.zeros(batch, n, dtype=torch.float64)
        self.cur = self.h
        self.truncation = truncation
        self.buf: list[tuple[torch.Tensor, torch.Tensor]] = []

    def state_floats(self) -> int:
        """Floats kept for the backward pass (inputs + states of T steps)."""
        return self.h.numel() * (self.truncation + 1) + sum(x.numel() for x, _ in self.buf[:1]) * self.truncation

    def step(self, p: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, Any]:
        self.buf.append((x, y))
        with torch.no_grad():  # the running state (parameters change only at window ends)
            self.cur = torch.vmap(lambda h1, x1: cell(p, h1, x1))(self.cur, x)
            loss = float(step_loss(q, self.cur, y))
        if len(self.buf) < self.truncation:
            return loss, None
        pp, qq = p.detach().requires_grad_(True), q.detach().requires_grad_(True)
        h, total = self.h, 0.0
        for xs, ys in self.buf:
            h = torch.vmap(lambda h1, x1: cell(pp, h1, x1))(h, xs)
            total = total + step_loss(qq, h, ys)
        gp, gq = torch.autograd.grad(total / self.truncation, (pp, qq))
        self.h, self.buf = h.detach(), []
        self.cur = self.h
        return loss, (gp, gq)


# -- tasks -----------------------------------------------------------------------------------------


def patch_streams(batch: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps, B, 16) inputs and next-patch targets from gray photos read in raster order."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = sorted(DATA.glob("*.png"))
    if not files:
        raise SystemExit(f"no images under {DATA}")
    seqs = []
    for b in range(batch):
        patches: list[np.ndarray] = []
        while len(patches) < steps + 1:
            with Image.open(files[rng.integers(len(files))]) as im:
                g = np.asarray(im.convert("L"), dtype=np.float64) / 255.0 - 0.5
            top = int(rng.integers(0, g.shape[0] // PATCH)) * PATCH
            row = g[top:top + PATCH, : g.shape[1] // PATCH * PATCH]
            patches += list(row.reshape(PATCH, -1, PATCH).transpose(1, 0, 2).reshape(-1, PATCH * PATCH))
        seqs.append(np.stack(patches[: steps + 1]))
    arr = torch.from_numpy(np.stack(seqs, axis=1))
    return arr[:-1], arr[1:]


def delay_streams(batch: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps, B, 4) +-1 inputs; target: the first input channel DELAY steps earlier."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 2, (steps + DELAY, batch, 4), generator=g).to(torch.float64) * 2 - 1
    return x[DELAY:], x[:-DELAY, :, :1].clone()


# -- training runs ---------------------------------------------------------------------------------


def make_algo(name: str, batch: int, n: int, pr: int, seed: int) -> Any:
    """An algorithm by name: rtrl, uoro or tbptt-T."""
    if name == "rtrl":
        return Rtrl(batch, n, pr)
    if name == "uoro":
        return Uoro(batch, n, pr, seed)
    return Tbptt(batch, n, int(name.split("-")[1]))


def train_run(task: str, algo_name: str, opt_name: str, lr: float, steps: int, batch: int,
              seed: int = 0) -> dict[str, Any]:
    """One online training run; loss curve against steps and seconds."""
    xs, ys = (patch_streams if task == "patches" else delay_streams)(batch, steps, seed)
    m, out = xs.shape[-1], ys.shape[-1]
    p, q = (t.requires_grad_(True) for t in init_params(HIDDEN, m, out, seed))
    opt = (torch.optim.Adam if opt_name == "adam" else torch.optim.SGD)([p, q], lr=lr)
    pr, _ = sizes(HIDDEN, m, out)
    algo = make_algo(algo_name, batch, HIDDEN, pr, seed + 1)
    # CPU time of this process: the box is shared, so wall time would measure the neighbours.
    losses, t0, floats = [], time.process_time(), 0
    for t in range(steps):
        loss, grads = algo.step(p.detach(), q.detach(), xs[t], ys[t])
        floats = max(floats, algo.state_floats())
        losses.append(loss if math.isfinite(loss) else float("nan"))
        if grads is not None:
            p.grad, q.grad = grads[0].clone(), grads[1].clone()
            torch.nn.utils.clip_grad_norm_([p, q], 10.0)  # the same guard for every method
            opt.step()
    return {"task": task, "algo": algo_name, "opt": opt_name, "lr": lr, "losses": losses,
            "seconds": time.process_time() - t0, "state_floats": floats}


# -- gradient quality ------------------------------------------------------------------------------


def true_and_estimates(length: int, repeats: int, seed: int, task: str = "delay") -> dict[str, Any]:
    """Gradient of the last step's loss: exact (BPTT), UORO (``repeats`` noise draws), TBPTT(T)."""
    xs, ys = (patch_streams if task == "patches" else delay_streams)(1, length, seed)
    m, out = xs.shape[-1], ys.shape[-1]
    p, q = init_params(HIDDEN, m, out, seed)
    pr, _ = sizes(HIDDEN, m, out)
    exact = bptt_gradient(p, q, xs[:, 0], ys[-1, 0], 0)
    uoro = Uoro(repeats, HIDDEN, pr, seed + 7)
    for t in range(length):
        loss, grads = uoro.step(p, q, xs[t, 0].expand(repeats, -1), ys[t, 0].expand(repeats, -1))
    # Per-draw estimates (the batch mean in Uoro.step is over identical copies).
    _, gh, _ = _loss_grads(q, uoro.h, ys[-1, 0].expand(repeats, -1))
    draws = (gh * uoro.s).sum(1, keepdim=True) * uoro.t * repeats
    truncated = {t: bptt_gradient(p, q, xs[:, 0], ys[-1, 0], length - t) for t in (1, 2, 4, 8, 16) if t <= length}
    return {"exact": exact, "uoro": draws, "tbptt": truncated}


def bptt_gradient(p: torch.Tensor, q: torch.Tensor, xs: torch.Tensor, y_last: torch.Tensor, cut: int) -> torch.Tensor:
    """d loss(last step) / d p by autograd, the state detached before step ``cut`` (0 = full)."""
    pp = p.detach().requires_grad_(True)
    h = torch.zeros(HIDDEN, dtype=torch.float64)
    for t in range(xs.shape[0]):
        if t == cut:
            h = h.detach()
        h = cell(pp if t >= cut else pp.detach(), h, xs[t])
    (g,) = torch.autograd.grad(step_loss(q, h[None], y_last[None]), pp)
    return g


def gradient_quality(length: int = 20, repeats: int = 4000, seed: int = 3) -> dict[str, Any]:
    """Bias and variance of UORO, and bias of TBPTT(T), against the exact gradient."""
    r = true_and_estimates(length, repeats, seed)
    g, d = r["exact"], r["uoro"]
    norm2 = float(g.norm() ** 2)
    mean = d.mean(0)
    out = {
        "length": length, "repeats": repeats, "grad_norm": math.sqrt(norm2),
        "uoro_rel_variance": float(((d - g) ** 2).sum(1).mean() / norm2),
        "uoro_rel_bias_of_mean": float((mean - g).norm() ** 2 / norm2) ** 0.5,
        # What the mean's error would be if UORO were unbiased: sqrt(variance / repeats).
        "uoro_rel_std_of_mean": math.sqrt(float(((d - g) ** 2).sum(1).mean() / norm2) / repeats),
        "uoro_single_cosine": float(torch.nn.functional.cosine_similarity(d, g[None]).mean()),
        "tbptt_rel_bias": {str(t): float((gt - g).norm() / g.norm()) for t, gt in r["tbptt"].items()},
    }
    return out


# -- report ----------------------------------------------------------------------------------------


def smooth(v: list[float], w: int) -> np.ndarray:
    """Moving average (valid part)."""
    a = np.asarray(v, dtype=np.float64)
    return np.convolve(a, np.ones(w) / w, mode="valid") if len(a) >= w else a


def summarise(runs: list[dict[str, Any]], tail: int) -> list[dict[str, Any]]:
    """Final loss (mean of the last ``tail`` steps), time per step, memory, per run."""
    rows = []
    for r in runs:
        last = np.asarray(r["losses"][-tail:])
        rows.append({"task": r["task"], "algo": r["algo"], "opt": r["opt"], "lr": r["lr"],
                     "final_loss": float(np.nanmean(last)) if np.isfinite(last).any() else float("nan"),
                     "ms_per_step": 1000 * r["seconds"] / len(r["losses"]),
                     "state_floats": r["state_floats"]})
    return rows


def best_runs(runs: list[dict[str, Any]], table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each (task, method, optimiser), the run of the learning rate with the lowest final loss."""
    best: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
    for run, row in zip(runs, table):
        key = (run["task"], run["algo"], run["opt"])
        loss = row["final_loss"] if math.isfinite(row["final_loss"]) else math.inf
        if key not in best or loss < best[key][0]:
            best[key] = (loss, run)
    return [r for _, r in best.values()]


def plot(runs: list[dict[str, Any]], path: str, window: int) -> None:
    """Loss vs steps and vs seconds, one row per task, SGD solid / Adam dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in runs})
    fig, axes = plt.subplots(len(tasks), 2, figsize=(13, 4.2 * len(tasks)), squeeze=False)
    colors: dict[str, Any] = {}
    for r in runs:
        c = colors.setdefault(r["algo"], f"C{len(colors)}")
        row = tasks.index(r["task"])
        y = smooth(r["losses"], window)
        x = np.arange(len(y)) + window
        sec = x * r["seconds"] / len(r["losses"])
        style = "-" if r["opt"] == "sgd" else "--"
        label = f"{r['algo']} {r['opt']}"
        axes[row, 0].plot(x, y, style, color=c, label=label, lw=1.2)
        axes[row, 1].plot(sec, y, style, color=c, label=label, lw=1.2)
    for row, task in enumerate(tasks):
        for col, xl in enumerate(("online step", "CPU seconds (one thread)")):
            ax = axes[row, col]
            ax.set_yscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel(f"{task}: loss (moving avg {window})")
            ax.grid(alpha=0.3)
        axes[row, 0].legend(fontsize=7, ncol=2)
    fig.suptitle("GRU trained online: TBPTT(T) vs RTRL vs UORO (best lr each); solid SGD, dashed Adam")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(report: dict[str, Any]) -> str:
    """The study's table (best learning rate per method and optimiser) and gradient figures as Markdown."""
    lines = ["| task | method | optimiser | lr | final loss (last 20 %) | CPU ms / step | state floats |",
             "|---|---|---|---|---|---|---|"]
    for r in report["best"]:
        lines.append(f"| {r['task']} | {r['algo']} | {r['opt']} | {r['lr']} | {r['final_loss']:.5f} | "
                     f"{r['ms_per_step']:.2f} | {r['state_floats']} |")
    q = report["gradient_quality"]
    lines += ["", f"Gradient of the last loss of a {q['length']}-step delay sequence at initialisation, "
              f"{q['repeats']} UORO draws: relative variance E||g_uoro - g||^2 / ||g||^2 = "
              f"{q['uoro_rel_variance']:.1f}; mean cosine of one draw with g = {q['uoro_single_cosine']:.3f}; "
              f"||mean of draws - g|| / ||g|| = {q['uoro_rel_bias_of_mean']:.3f} (noise alone predicts "
              f"{q['uoro_rel_std_of_mean']:.3f}); TBPTT(T) relative bias: "
              + ", ".join(f"T={t}: {b:.3g}" for t, b in q["tbptt_rel_bias"].items()) + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--truncations", default="2,4,16")
    ap.add_argument("--lrs-sgd", default="0.25,0.5", help="SGD learning rates tried per method")
    ap.add_argument("--lrs-adam", default="0.005,0.02", help="Adam learning rates tried per method")
    ap.add_argument("--tasks", default="patches,delay")
    ap.add_argument("--out", default="docs/results/rnn_training_study.json")
    ap.add_argument("--plot", default="docs/img/rnn_training_study.png")
    ap.add_argument("--report-only", action="store_true", help="print the Markdown of an existing --out")
    args = ap.parse_args()
    if args.report_only:
        print(markdown(json.loads(Path(args.out).read_text())))
        return
    torch.set_num_threads(1)
    algos = [f"tbptt-{t}" for t in args.truncations.split(",")] + ["rtrl", "uoro"]
    t0 = time.time()
    quality = gradient_quality()
    print(json.dumps(quality), flush=True)
    runs = []
    for task in args.tasks.split(","):
        for algo in algos:
            grid = [("sgd", float(v)) for v in args.lrs_sgd.split(",")] + \
                   [("adam", float(v)) for v in args.lrs_adam.split(",")]
            for opt, lr in grid:
                run = train_run(task, algo, opt, lr, args.steps, args.batch)
                runs.append(run)
                print(json.dumps(summarise([run], args.steps // 5)[0]), flush=True)
    table = summarise(runs, args.steps // 5)
    best = best_runs(runs, table)
    report = {"config": vars(args), "hidden": HIDDEN, "delay": DELAY, "gradient_quality": quality,
              "table": table, "best": [summarise([r], args.steps // 5)[0] for r in best],
              "curves": runs, "wall_seconds": time.time() - t0}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot(best, args.plot, max(1, args.steps // 30))
    print(markdown(report))


if __name__ == "__main__":
    main()
