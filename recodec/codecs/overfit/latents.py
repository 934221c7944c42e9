"""Range coding of the latent pyramid with the context model, in parallel wavefronts.

Latent (i, j) of every level is coded at step ``j + LAG * i``: all its causal neighbours
(:data:`.network.CONTEXT`) belong to earlier steps, so one step is one batched context-model
call and a few vectorised range-coder calls (one per width class, then the escapes), for
every level at once.  A 768x512 image takes about ``768 + 2 * 512`` steps, not 400k.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from recodec.codecs.overfit.exact import ExactArm
from recodec.codecs.overfit.network import CONTEXT, LAG, PAD_LEFT, PAD_RIGHT, PAD_TOP, level_shapes
from recodec.codecs.overfit.tables import CLASS_HALF, LATENT_MAX, MU_FRAC_BITS, MU_STEPS, tables, uniform_probs

ESCAPE_BITS = float(np.log2(2 * LATENT_MAX + 1))


@dataclass
class Plan:
    """Where every latent lives in one flat, zero-padded buffer, and the wavefront order."""

    shapes: list[tuple[int, int]]
    starts: list[int]          # offset of each level's padded grid in the buffer
    widths: list[int]          # padded row length of each level
    size: int                  # buffer length
    order: np.ndarray          # buffer index of every latent, in coding order
    level: np.ndarray          # level of every latent, in coding order
    bounds: np.ndarray         # step boundaries into ``order``
    offsets: np.ndarray        # (levels, len(CONTEXT)) buffer offsets of the neighbours

    def grids(self, buffer: np.ndarray) -> list[np.ndarray]:
        """The (h, w) latent grids held by ``buffer``."""
        out = []
        for (h, w), start, wp in zip(self.shapes, self.starts, self.widths):
            grid = buffer[start:start + (h + PAD_TOP) * wp].reshape(h + PAD_TOP, wp)
            out.append(grid[PAD_TOP:, PAD_LEFT:PAD_LEFT + w])
        return out


def make_plan(height: int, width: int, levels: int) -> Plan:
    """The buffer layout and wavefront order of an image's latent pyramid."""
    shapes = level_shapes(height, width, levels)
    starts, widths, pos = [], [], 0
    idx, lev, step = [], [], []
    for lv, (h, w) in enumerate(shapes):
        wp = w + PAD_LEFT + PAD_RIGHT
        starts.append(pos)
        widths.append(wp)
        ii, jj = np.mgrid[0:h, 0:w]
        idx.append((pos + (ii + PAD_TOP) * wp + jj + PAD_LEFT).ravel())
        lev.append(np.full(h * w, lv))
        step.append((jj + LAG * ii).ravel())
        pos += (h + PAD_TOP) * wp
    idx_a, lev_a, step_a = np.concatenate(idx), np.concatenate(lev), np.concatenate(step)
    key = np.lexsort((idx_a, lev_a, step_a))
    step_sorted = step_a[key]
    bounds = np.searchsorted(step_sorted, np.arange(int(step_sorted[-1]) + 2))
    offsets = np.array([[dy * wp + dx for dy, dx in CONTEXT] for wp in widths], dtype=np.int64)
    return Plan(shapes, starts, widths, pos, idx_a[key], lev_a[key], bounds, offsets)


def fill(plan: Plan, latents: list[np.ndarray]) -> np.ndarray:
    """A buffer holding integer ``latents`` (finest first)."""
    buf = np.zeros(plan.size, dtype=np.int64)
    for grid, lat in zip(plan.grids(buf), latents):
        grid[...] = lat
    return buf


def _symbols(mu: np.ndarray, index: np.ndarray, values: np.ndarray | None) -> tuple[Any, ...]:
    """Row, class, base and (when ``values`` is given) symbol and escape flag of each latent."""
    t = tables()
    base = mu >> MU_FRAC_BITS
    row = index * MU_STEPS + (mu - (base << MU_FRAC_BITS))
    cls = t.row_class[row]
    if values is None:
        return row, cls, base
    half = np.asarray(CLASS_HALF)[cls]
    k = values - base
    escape = np.abs(k) > half
    return row, cls, base, np.where(escape, 2 * half + 1, k + half), escape


@dataclass
class Coded:
    """Latents to price: each distinct (context, value) pair once, with how often it occurs."""

    ctx: np.ndarray            # (n, len(CONTEXT)) causal neighbours
    values: np.ndarray         # (n,) latent values
    counts: np.ndarray         # (n,) occurrences


def coded(plan: Plan, buf: np.ndarray) -> Coded:
    """The distinct (context, value) pairs of the latents in ``buf``.

    A latent's code length depends only on its pair, and most pairs repeat (zeros amid zeros):
    a 384x384 fit's 196k latents had 2.7k-24k distinct pairs (``benchmarks/overfitted_quant.py``), so
    pricing them under several context models (the encoder's precision search) costs a few percent
    of pricing every latent.
    """
    rows = np.concatenate([buf[plan.order[:, None] + plan.offsets[plan.level]], buf[plan.order][:, None]], axis=1)
    rows = rows[np.lexsort(rows.T[::-1])]
    first = np.ones(len(rows), dtype=bool)
    np.any(rows[1:] != rows[:-1], axis=1, out=first[1:])
    starts = np.flatnonzero(first)
    rows = rows[starts]
    return Coded(rows[:, :-1], rows[:, -1], np.diff(np.append(starts, len(first))))


def code_length(arm: ExactArm, latents: Coded) -> float:
    """Exact code length (bits, before range-coder overhead) of ``latents`` under ``arm``."""
    mu, index = arm(latents.ctx)
    row, cls, _, sym, escape = _symbols(mu, index, latents.values)
    t = tables()
    bits = 0.0
    for c in range(len(CLASS_HALF)):
        sel = cls == c
        if sel.any():
            counts = t.counts[c][t.row_local[row[sel]], sym[sel]]
            bits += float(np.sum(latents.counts[sel] * (16 - np.log2(counts))))
    return bits + ESCAPE_BITS * int(latents.counts[escape].sum())


def estimate_bits(plan: Plan, arm: ExactArm, buf: np.ndarray) -> float:
    """Exact code length (bits, before range-coder overhead) of the latents in ``buf``."""
    return code_length(arm, coded(plan, buf))


def encode(plan: Plan, arm: ExactArm, buf: np.ndarray, encoder: Any) -> None:
    """Append the latents of ``buf`` to a constriction RangeEncoder, step by step."""
    import constriction

    family = constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Categorical(uniform_probs(), perfect=False)
    t = tables()
    ctx = buf[plan.order[:, None] + plan.offsets[plan.level]]
    mu, index = arm(ctx)  # the encoder knows every latent: one batched pass
    row, cls, _, sym, escape = _symbols(mu, index, buf[plan.order])
    values = buf[plan.order]
    for s in range(len(plan.bounds) - 1):
        lo, hi = plan.bounds[s], plan.bounds[s + 1]
        c_step, r_step, s_step, e_step, v_step = cls[lo:hi], row[lo:hi], sym[lo:hi], escape[lo:hi], values[lo:hi]
        escaped = []
        for c in np.unique(c_step):
            sel = c_step == c
            encoder.encode(s_step[sel].astype(np.int32), family, t.probs[c][t.row_local[r_step[sel]]])
            escaped.append(v_step[sel][e_step[sel]])
        esc = np.concatenate(escaped)
        if esc.size:
            encoder.encode((esc + LATENT_MAX).astype(np.int32), uniform)


def decode(plan: Plan, arm: ExactArm, decoder: Any) -> np.ndarray:
    """Read the latents in the same steps; returns the filled buffer."""
    import constriction

    family = constriction.stream.model.Categorical(perfect=False)
    uniform = constriction.stream.model.Categorical(uniform_probs(), perfect=False)
    t = tables()
    halves = np.asarray(CLASS_HALF)
    buf = np.zeros(plan.size, dtype=np.int64)
    for s in range(len(plan.bounds) - 1):
        where = plan.order[plan.bounds[s]:plan.bounds[s + 1]]
        ctx = buf[where[:, None] + plan.offsets[plan.level[plan.bounds[s]:plan.bounds[s + 1]]]]
        mu, index = arm(ctx)
        row, cls, base = _symbols(mu, index, None)
        values = np.empty(len(where), dtype=np.int64)
        escaped = []
        for c in np.unique(cls):
            sel = np.flatnonzero(cls == c)
            sym = np.asarray(decoder.decode(family, t.probs[c][t.row_local[row[sel]]]), dtype=np.int64)
            half = int(halves[c])
            values[sel] = base[sel] + sym - half
            escaped.append(sel[sym == 2 * half + 1])
        esc = np.concatenate(escaped)
        if esc.size:
            values[esc] = np.asarray(decoder.decode(uniform, esc.size), dtype=np.int64) - LATENT_MAX
        buf[where] = np.clip(values, -LATENT_MAX, LATENT_MAX)  # a corrupt stream stays in range
    return buf
