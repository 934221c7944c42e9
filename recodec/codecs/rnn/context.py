"""Context model of the binary codes: fixed integer probabilities, exact on every machine.

Each code bit ``u[k, c, y, x]`` (0/1) is range-coded with P(u = 1) read from an integer
table (units of 2**-16, stored in the weights file, estimated from training images at
export).  Its context is everything the decoder already knows:

* iteration ``k`` and channel ``c``;
* the same bit at the previous iteration (none / 0 / 1);
* how many of its four spatial neighbours were 1 at the previous iteration (0..4);
* the bit of channel ``c - 1`` at the same place in this iteration.

After the codes come the per-block "apply" flags of the iteration (see
:func:`recodec.codecs.rnn.runtime.encode_tile_bits`), with one integer P(1) per iteration.

Channels are coded one after another, so the decoder computes channel ``c``'s contexts
after decoding channel ``c - 1``; every symbol of one channel is one constriction call.
Probabilities are ``count / 2**16`` (exact in float64), so the coder's models are a pure
function of the table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS
#: Probabilities are kept in [P_MIN, 2**16 - P_MIN]: a wrong guess costs at most ~11 bits.
P_MIN = 32
#: Sub-contexts per (iteration, channel): 3 previous-bit states x 5 neighbour sums x 2.
SUB = 30


def table_size(iterations: int, bits: int) -> int:
    """Number of contexts."""
    return iterations * bits * SUB


def _neighbours(prev: np.ndarray) -> np.ndarray:
    """Count of ones among the 4-neighbours (zero padding), per channel: (B, h, w) -> (B, h, w)."""
    p = np.pad(prev, ((0, 0), (1, 1), (1, 1)))
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]


def base_contexts(k: int, bits: int, prev: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Context index without the same-iteration term, times 2: (bits, h, w) int64."""
    c = np.arange(bits, dtype=np.int64)[:, None, None]
    if prev is None:
        state = np.zeros((bits, *shape), dtype=np.int64)
        nsum = state
    else:
        state = 1 + prev.astype(np.int64)
        nsum = _neighbours(prev.astype(np.int64))
    return ((((k * bits + c) * 3 + state) * 5 + nsum) * 2).astype(np.int64)


def contexts(k: int, u: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """Contexts of every bit of iteration ``k`` (for the encoder, which knows all of ``u``)."""
    bits = u.shape[0]
    ctx = base_contexts(k, bits, prev, u.shape[1:])
    ctx[1:] += u[:-1].astype(np.int64)
    return ctx


def estimate_table(ones: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Integer P(1) per context from counts (Krichevsky-Trofimov estimate, clamped)."""
    p = (ones + 0.5) / (totals + 1.0)
    return np.clip(np.round(p * PROB_ONE), P_MIN, PROB_ONE - P_MIN).astype(np.int32)


def _model() -> Any:
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)


def encode_iteration(encoder: Any, table: np.ndarray, k: int, u: np.ndarray, prev: np.ndarray | None) -> None:
    """Append iteration ``k``'s bits ``u`` (bits, h, w) in channel-major order."""
    probs = table[contexts(k, u, prev)].astype(np.float64) / PROB_ONE
    encoder.encode(u.reshape(-1).astype(np.int32), _model(), probs.reshape(-1))


def decode_iteration(decoder: Any, table: np.ndarray, k: int, bits: int, shape: tuple[int, int],
                     prev: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`encode_iteration`: (bits, h, w) uint8."""
    base = base_contexts(k, bits, prev, shape)
    u = np.zeros((bits, *shape), dtype=np.uint8)
    model = _model()
    for c in range(bits):
        ctx = base[c] + (u[c - 1].astype(np.int64) if c else 0)
        probs = table[ctx].astype(np.float64).reshape(-1) / PROB_ONE
        u[c] = np.asarray(decoder.decode(model, probs), dtype=np.uint8).reshape(shape)
    return u


def encode_flags(encoder: Any, table: np.ndarray, k: int, flags: np.ndarray) -> None:
    """Append iteration ``k``'s per-block apply flags (h, w) of 0/1."""
    probs = np.full(flags.size, table[k] / PROB_ONE, dtype=np.float64)
    encoder.encode(flags.reshape(-1).astype(np.int32), _model(), probs)


def decode_flags(decoder: Any, table: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`encode_flags`: (h, w) uint8."""
    probs = np.full(shape[0] * shape[1], table[k] / PROB_ONE, dtype=np.float64)
    return np.asarray(decoder.decode(_model(), probs), dtype=np.uint8).reshape(shape)
