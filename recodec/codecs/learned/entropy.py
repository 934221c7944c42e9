"""Entropy coding with constriction's range coder over fixed integer probability tables.

Every probability the coder sees comes from an integer table stored in the weights file
(counts summing to ``2**TABLE_PRECISION``); the decoder never evaluates a density, so the
models it builds are identical on every machine.  Symbols are offsets into a table row;
values outside a row's support are clamped by the encoder (the encoder reconstructs from
the clamped values too, so encoder and decoder agree).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

TABLE_PRECISION = 16
TABLE_TOTAL = 1 << TABLE_PRECISION


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """Integer counts (each >= 1) summing exactly to TABLE_TOTAL for a probability vector."""
    pmf = np.asarray(pmf, dtype=np.float64)
    pmf = np.maximum(pmf, 0) / max(pmf.sum(), 1e-300)
    counts = np.maximum(1, np.round(pmf * (TABLE_TOTAL - len(pmf)))).astype(np.int64)
    # Settle the rounding residue on the most probable symbol: cheapest place in bits.
    counts[np.argmax(counts)] += TABLE_TOTAL - counts.sum()
    if counts.min() < 1:
        raise ValueError("table too long for the precision")
    return counts


def pack_tables(rows: list[np.ndarray], offsets: list[int]) -> dict[str, np.ndarray]:
    """Padded (R, L) int32 count table, per-row lengths and offsets (symbol = value - offset)."""
    width = max(len(r) for r in rows)
    table = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        table[i, : len(r)] = r
    return {"counts": table, "lengths": np.array([len(r) for r in rows], dtype=np.int32),
            "offsets": np.array(offsets, dtype=np.int32)}


def density_tables(bin_probability: Callable[[np.ndarray], np.ndarray], channels: int, *,
                   bound: int, tail: float = 1e-7) -> dict[str, np.ndarray]:
    """Tables of a factorized density: ``bin_probability(values) -> (channels, len(values))``."""
    values = np.arange(-bound, bound + 1)
    probs = bin_probability(values)
    rows, offsets = [], []
    for c in range(channels):
        p = probs[c]
        cdf = np.cumsum(p) / p.sum()
        lo = int(np.searchsorted(cdf, tail))
        hi = int(np.searchsorted(cdf, 1 - tail))
        lo, hi = max(0, min(lo, bound - 1)), min(len(values) - 1, max(hi, bound + 1))
        rows.append(quantize_pmf(p[lo:hi + 1]))
        offsets.append(int(values[lo]))
    return pack_tables(rows, offsets)


#: Smallest half-width of a Gaussian table row.  Why so wide: a residual outside its row is
#: clamped by the encoder (a decoding error), and an undertrained scale model predicts
#: tiny scales where residuals of 10-30 occur; at width 6 this clamping cost 0.3 dB at the
#: top qualities.  Each extra symbol holds 1/65536 of the mass, so 64 costs ~0.003 bits/symbol.
MIN_HALF_WIDTH = 64


def gaussian_tables(scales: np.ndarray, *, tail_sigmas: float = 10.0,
                    min_half_width: int = MIN_HALF_WIDTH) -> dict[str, np.ndarray]:
    """Zero-mean quantised Gaussian tables, one row per scale."""
    rows, offsets = [], []
    for s in scales:
        half = max(min_half_width, int(math.ceil(tail_sigmas * float(s))))
        k = np.arange(-half, half + 1, dtype=np.float64)
        upper = np.array([0.5 * math.erfc(-(v + 0.5) / (s * math.sqrt(2))) for v in k])
        lower = np.array([0.5 * math.erfc(-(v - 0.5) / (s * math.sqrt(2))) for v in k])
        rows.append(quantize_pmf(upper - lower))
        offsets.append(-half)
    return pack_tables(rows, offsets)


class TableSet:
    """Constriction models built lazily from one packed table (one model per row)."""

    def __init__(self, counts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self._models: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.lengths)

    def model(self, row: int) -> Any:
        """The constriction Categorical model of ``row``."""
        m = self._models.get(row)
        if m is None:
            import constriction

            # counts / 2**16 is exact in float64, so the model is a pure function of the table.
            probs = self.counts[row, : self.lengths[row]].astype(np.float64) / TABLE_TOTAL
            m = constriction.stream.model.Categorical(probs, perfect=False)
            self._models[row] = m
        return m

    def clamp(self, values: np.ndarray, rows: np.ndarray | int) -> np.ndarray:
        """Clamp integer ``values`` into the support of their rows."""
        lo = self.offsets[rows]
        hi = lo + self.lengths[rows] - 1
        return np.clip(values, lo, hi)

    def encode(self, encoder: Any, values: np.ndarray, row: int) -> None:
        """Append in-support integer ``values`` coded with ``row``'s model."""
        if values.size:
            encoder.encode((values.ravel() - self.offsets[row]).astype(np.int32), self.model(row))

    def decode(self, decoder: Any, count: int, row: int) -> np.ndarray:
        """Read ``count`` values coded with ``row``'s model."""
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        symbols = np.asarray(decoder.decode(self.model(row), count), dtype=np.int64)
        return symbols + self.offsets[row]


def encode_grouped(tables: TableSet, encoder: Any, values: np.ndarray, rows: np.ndarray) -> None:
    """Encode ``values`` (flat) grouped by their table row, rows ascending.

    Grouping keeps one constriction call per distinct row instead of one per symbol; the
    decoder knows ``rows`` (from z_hat) and reads the groups in the same order.
    """
    values, rows = values.ravel(), rows.ravel()
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    bounds = np.flatnonzero(np.diff(sorted_rows)) + 1
    for chunk in np.split(order, bounds):
        if chunk.size:
            tables.encode(encoder, values[chunk], int(rows[chunk[0]]))


def decode_grouped(tables: TableSet, decoder: Any, rows: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_grouped`: values (flat, int64) for the given rows."""
    rows = rows.ravel()
    out = np.empty(rows.shape, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    bounds = np.flatnonzero(np.diff(sorted_rows)) + 1
    for chunk in np.split(order, bounds):
        if chunk.size:
            out[chunk] = tables.decode(decoder, chunk.size, int(rows[chunk[0]]))
    return out
