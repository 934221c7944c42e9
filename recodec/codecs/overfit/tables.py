"""Laplace probability tables built in exact integer arithmetic (no libm at decode time).

The context model predicts, per latent, a mean ``mu`` (in 1/8 steps) and a scale index ``s``
(:data:`N_SCALES` log-spaced Laplace scales).  A latent is coded as ``k = y - floor(mu)`` with
the table row ``(s, frac(mu))``: counts of a Laplace centred on ``frac(mu)`` over
``k in [-h, h]`` plus one escape symbol for anything outside (then coded uniformly).

Why integers: every decoder must see the same counts.  The only transcendental values are
the 64 ratios ``q_s = exp(-1/(8 b_s))``, computed with :mod:`decimal` (a software library,
correctly rounded, the same on every machine); powers of ``q_s`` and the counts are Python /
int64 integer arithmetic.
"""

from __future__ import annotations

import decimal
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from recodec.codecs.learned.entropy import TABLE_TOTAL

N_SCALES = 64
#: Smallest and largest Laplace scale of the table (latent units).
B_MIN, B_MAX = 0.03, 160.0
LOG_STEP = math.log(B_MAX / B_MIN) / (N_SCALES - 1)
#: Mean resolution: 1/8 of a latent step.
MU_FRAC_BITS = 3
MU_STEPS = 1 << MU_FRAC_BITS
#: Half-widths of the width classes; a scale uses the smallest class >= ~12 scales.
CLASS_HALF = (8, 32, 128, 512)
#: Latents are clamped to [-LATENT_MAX, LATENT_MAX]; escaped latents are coded uniformly in it.
LATENT_MAX = 1023
_Q_BITS = 30


def scale_of(index: np.ndarray | float) -> np.ndarray | float:
    """Laplace scale of a (float) scale index (the training-time mapping)."""
    return B_MIN * np.exp(np.asarray(index) * LOG_STEP)


def _q_fixed(s: int) -> int:
    """round(exp(-1/(8 b_s)) * 2**30) with decimal arithmetic (platform independent)."""
    ctx = decimal.Context(prec=40)
    b = ctx.multiply(decimal.Decimal(repr(B_MIN)),
                     ctx.exp(ctx.multiply(decimal.Decimal(s), ctx.divide(
                         ctx.ln(ctx.divide(decimal.Decimal(repr(B_MAX)), decimal.Decimal(repr(B_MIN)))),
                         decimal.Decimal(N_SCALES - 1)))))
    q = ctx.exp(ctx.divide(decimal.Decimal(-1), ctx.multiply(decimal.Decimal(8), b)))
    return int(ctx.to_integral_value(ctx.multiply(q, decimal.Decimal(1 << _Q_BITS))))


def class_of_scale(s: int) -> int:
    """Width class of scale index ``s``."""
    b = B_MIN * math.exp(s * LOG_STEP)  # only picks a class: a 1-ulp difference cannot cross 12*b
    need = 12.0 * b + 2
    for c, half in enumerate(CLASS_HALF):
        if half >= need:
            return c
    return len(CLASS_HALF) - 1


def _row_counts(q: int, half: int, frac: int) -> np.ndarray:
    """Counts (sum TABLE_TOTAL, each >= 1) of k in [-half, half] then the escape symbol."""
    one = 1 << (_Q_BITS + 1)
    top = 8 * half + 16
    powers = [1 << _Q_BITS]
    for _ in range(top):
        powers.append((powers[-1] * q) >> _Q_BITS)

    def cdf(e: int) -> int:  # P(X < e/8) with X ~ Laplace(frac/8), in units of 2**-31
        return powers[-e] if e < 0 else one - powers[e]

    edges = [cdf(8 * k + 4 - frac) for k in range(-half - 1, half + 1)]
    mass = [edges[i + 1] - edges[i] for i in range(len(edges) - 1)]
    mass.append(edges[0] + (one - edges[-1]))  # escape: both tails
    total, n = sum(mass), len(mass)
    counts = [1 + m * (TABLE_TOTAL - n) // total for m in mass]
    peak = max(range(n), key=counts.__getitem__)
    counts[peak] += TABLE_TOTAL - sum(counts)
    return np.array(counts, dtype=np.int64)


@dataclass(frozen=True)
class Tables:
    """Per width class: float probabilities (rows, 2*half+2) for constriction, and row maps."""

    probs: tuple[np.ndarray, ...]     # per class, (rows in class, 2*half + 2) float64 = counts / 2**16
    counts: tuple[np.ndarray, ...]    # per class, int64 counts (for rate estimates)
    row_class: np.ndarray             # (N_SCALES * MU_STEPS,) class of each global row
    row_local: np.ndarray             # (N_SCALES * MU_STEPS,) row index inside its class


@lru_cache(maxsize=1)
def tables() -> Tables:
    """The (cached) table set; rows are ``scale * MU_STEPS + mu_frac``."""
    per_class: list[list[np.ndarray]] = [[] for _ in CLASS_HALF]
    row_class = np.zeros(N_SCALES * MU_STEPS, dtype=np.int64)
    row_local = np.zeros(N_SCALES * MU_STEPS, dtype=np.int64)
    for s in range(N_SCALES):
        c = class_of_scale(s)
        q = _q_fixed(s)
        for f in range(MU_STEPS):
            row = s * MU_STEPS + f
            row_class[row], row_local[row] = c, len(per_class[c])
            per_class[c].append(_row_counts(q, CLASS_HALF[c], f))
    counts = tuple(np.stack(rows) if rows else np.zeros((0, 2 * h + 2), np.int64)
                   for rows, h in zip(per_class, CLASS_HALF))
    probs = tuple(c.astype(np.float64) / TABLE_TOTAL for c in counts)
    return Tables(probs, counts, row_class, row_local)


def uniform_probs() -> np.ndarray:
    """Probabilities of an escaped latent over [-LATENT_MAX, LATENT_MAX]."""
    n = 2 * LATENT_MAX + 1
    return np.full(n, 1.0 / n)
