"""Context models of the binary codes: integer probabilities, exact on every machine.

Each code bit ``u[k, c, y, x]`` (0/1) is range-coded with an integer P(u = 1) (units of
2**-16).  Its context is everything the decoder already knows.  Two models, chosen by the
weights file (the stream header pins it):

* :class:`LogisticContext` (shipped weights since session 12): a per-(iteration, channel)
  logistic model on the bits of the channels ``< c`` at the same place in this iteration
  and all channels at the same place in the previous iteration, as +-1::

      logit = b[k, c] + sum_{s < c} w[k, c, s] u'[k, s] + sum_s v[k, c, s] u'[k-1, s]
      P(1)  = LUT[clamp(logit)]              (integer weights, 2**-8 units; LUT in the file)

  The binarizer's 32 bits of a block are strongly linearly dependent, which this model
  exploits: 0.69 bits per code bit on held-out photos, where the table model below needs
  0.96 (docs/rnn.md).
* :class:`TableContext` (the first weights): P(1) from a table indexed by iteration,
  channel, the same bit at the previous iteration, how many of its four neighbours were 1
  there, and the bit of channel ``c - 1``.  Kept so that streams of retired weights decode.

After the codes come the per-block "apply" flags of the iteration (see
:func:`recodec.codecs.rnn.runtime.encode_tile_bits`), with one integer P(1) per iteration.

Channels are coded one after another, so the decoder computes channel ``c``'s
probabilities after decoding channel ``c - 1`` (:meth:`ContextModel.channel_probs` yields them
in turn, keeping what the earlier channels contributed); every symbol of one channel is one
constriction call.  Probabilities are ``count / 2**16`` (exact in float64), so the coder's
models are a pure function of integers in the weights file.
"""

from __future__ import annotations

from typing import Any, Iterator, Protocol

import numpy as np

from recodec.errors import CodecError

PROB_BITS = 16
PROB_ONE = 1 << PROB_BITS
#: Probabilities are kept in [P_MIN, 2**16 - P_MIN]: a wrong guess costs at most ~11 bits.
P_MIN = 32
#: Sub-contexts per (iteration, channel) of the table model: 3 previous-bit states x 5 neighbour sums x 2.
SUB = 30
#: Logistic weights are integers in units of 2**-WEIGHT_FRAC.
WEIGHT_FRAC = 8
#: The probability table covers integer logits in [-LOGIT_MAX, LOGIT_MAX] (+-16 in real units).
LOGIT_MAX = 16 << WEIGHT_FRAC


class ContextModel(Protocol):
    """What the coder needs: every bit's P(1) (encoder) and each channel's in turn (decoder)."""

    def iteration_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """Integer P(1) of every bit of iteration ``k`` (bits, h, w), given all of ``u``."""

    def channel_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> Iterator[np.ndarray]:
        """Yield channel ``c``'s integer P(1) (h, w) for c = 0, 1, ...; the caller fills ``u[c]`` before the next."""


def clamp_probs(p: np.ndarray) -> np.ndarray:
    """Real probabilities -> integer P(1) in [P_MIN, 2**16 - P_MIN]."""
    return np.clip(np.round(p * PROB_ONE), P_MIN, PROB_ONE - P_MIN).astype(np.int32)


# -- the table model (first weights) -----------------------------------------------------------

def table_size(iterations: int, bits: int) -> int:
    """Number of contexts of the table model."""
    return iterations * bits * SUB


def _neighbours(prev: np.ndarray) -> np.ndarray:
    """Count of ones among the 4-neighbours (zero padding), per channel: (B, h, w) -> (B, h, w)."""
    p = np.pad(prev, ((0, 0), (1, 1), (1, 1)))
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]


def base_contexts(k: int, bits: int, prev: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Table index without the same-iteration term, times 2: (bits, h, w) int64."""
    c = np.arange(bits, dtype=np.int64)[:, None, None]
    if prev is None:
        state = np.zeros((bits, *shape), dtype=np.int64)
        nsum = state
    else:
        state = 1 + prev.astype(np.int64)
        nsum = _neighbours(prev.astype(np.int64))
    return ((((k * bits + c) * 3 + state) * 5 + nsum) * 2).astype(np.int64)


def contexts(k: int, u: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
    """Table index of every bit of iteration ``k`` (for the encoder, which knows all of ``u``)."""
    ctx = base_contexts(k, u.shape[0], prev, u.shape[1:])
    ctx[1:] += u[:-1].astype(np.int64)
    return ctx


def estimate_table(ones: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Integer P(1) per context from counts (Krichevsky-Trofimov estimate, clamped)."""
    return clamp_probs((ones + 0.5) / (totals + 1.0))


class TableContext:
    """P(1) from a table of :func:`table_size` integer probabilities."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.int32)

    def iteration_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """Integer P(1) of every bit of iteration ``k``."""
        return self.table[contexts(k, u, prev)]

    def channel_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> Iterator[np.ndarray]:
        """Channel by channel, integer P(1) given ``u[:c]``."""
        base = base_contexts(k, u.shape[0], prev, u.shape[1:])
        for c in range(u.shape[0]):
            yield self.table[base[c] + (u[c - 1].astype(np.int64) if c else 0)]


# -- the logistic model ------------------------------------------------------------------------

def logit_table() -> np.ndarray:
    """Integer P(1) of every integer logit in [-LOGIT_MAX, LOGIT_MAX] (stored in the weights file)."""
    z = np.arange(-LOGIT_MAX, LOGIT_MAX + 1, dtype=np.float64) / (1 << WEIGHT_FRAC)
    return clamp_probs(1.0 / (1.0 + np.exp(-z)))


def signs(u: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    """Bits as +-1 int64 (zeros where there is no previous iteration)."""
    return np.zeros(like.shape, np.int64) if u is None else 2 * u.astype(np.int64) - 1


class LogisticContext:
    """Integer logistic model: ``weights`` (K, C, 2C + 1) = [w (same iteration), v (previous), b]."""

    def __init__(self, weights: np.ndarray, lut: np.ndarray) -> None:
        self.weights = np.asarray(weights, dtype=np.int64)
        self.lut = np.asarray(lut, dtype=np.int32)
        bits = self.weights.shape[1]
        if self.weights.shape[2] != 2 * bits + 1 or self.lut.shape != (2 * LOGIT_MAX + 1,):
            raise CodecError("rnn: logistic context weights must be (K, C, 2C + 1) and its table 2 LOGIT_MAX + 1 long")
        # Only channels < c feed channel c: the encoder's one product must equal the decoder's loop.
        self.same = np.tril(self.weights[:, :, :bits], -1)

    def _probs(self, logits: np.ndarray) -> np.ndarray:
        return self.lut[np.clip(logits, -LOGIT_MAX, LOGIT_MAX) + LOGIT_MAX]

    def iteration_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> np.ndarray:
        """Integer P(1) of every bit of iteration ``k``."""
        bits, flat = u.shape[0], u.reshape(u.shape[0], -1)
        w = self.weights[k]
        logits = self.same[k] @ signs(flat, flat) + w[:, bits:2 * bits] @ self._prev(prev, flat) + w[:, -1:]
        return self._probs(logits).reshape(u.shape)

    def channel_probs(self, k: int, u: np.ndarray, prev: np.ndarray | None) -> Iterator[np.ndarray]:
        """Channel by channel, integer P(1) given ``u[:c]``: each decoded channel adds its terms to the later logits."""
        bits, flat = u.shape[0], u.reshape(u.shape[0], -1)
        w = self.weights[k]
        logits = w[:, bits:2 * bits] @ self._prev(prev, flat) + w[:, -1:]
        for c in range(bits):
            yield self._probs(logits[c]).reshape(u.shape[1:])
            logits[c + 1:] += self.same[k][c + 1:, c:c + 1] * signs(flat[c], flat[c])

    @staticmethod
    def _prev(prev: np.ndarray | None, flat: np.ndarray) -> np.ndarray:
        return signs(None if prev is None else prev.reshape(flat.shape), flat)


def model_from_state(state: dict[str, Any], iterations: int, bits: int) -> ContextModel:
    """The context model a weights file holds (uniform 1/2 before the export has fitted one)."""
    if "ctx.w" in state:
        return LogisticContext(state["ctx.w"].numpy(), state["ctx.lut"].numpy())
    if "ctx.p1" in state:
        return TableContext(state["ctx.p1"].numpy())
    return TableContext(np.full(table_size(iterations, bits), PROB_ONE // 2, np.int32))


def ideal_bits(model: ContextModel, codes: list[np.ndarray]) -> np.ndarray:
    """Ideal code length (-log2 P, in bits) of each iteration of ``codes`` (each (K, C, h, w)) under ``model``."""
    out = np.zeros(codes[0].shape[0])
    for u in codes:
        for k in range(u.shape[0]):
            p1 = model.iteration_probs(k, u[k], u[k - 1] if k else None).astype(np.float64) / PROB_ONE
            out[k] -= np.log2(np.where(u[k] == 1, p1, 1 - p1)).sum()
    return out


# -- coding ------------------------------------------------------------------------------------

def _model() -> Any:
    import constriction

    return constriction.stream.model.Bernoulli(perfect=False)


def encode_iteration(encoder: Any, model: ContextModel, k: int, u: np.ndarray, prev: np.ndarray | None) -> None:
    """Append iteration ``k``'s bits ``u`` (bits, h, w) in channel-major order."""
    probs = model.iteration_probs(k, u, prev).astype(np.float64) / PROB_ONE
    encoder.encode(u.reshape(-1).astype(np.int32), _model(), probs.reshape(-1))


def decode_iteration(decoder: Any, model: ContextModel, k: int, bits: int, shape: tuple[int, int],
                     prev: np.ndarray | None) -> np.ndarray:
    """Inverse of :func:`encode_iteration`: (bits, h, w) uint8."""
    u = np.zeros((bits, *shape), dtype=np.uint8)
    coder = _model()
    for c, p1 in enumerate(model.channel_probs(k, u, prev)):
        probs = p1.astype(np.float64).reshape(-1) / PROB_ONE
        u[c] = np.asarray(decoder.decode(coder, probs), dtype=np.uint8).reshape(shape)
    return u


def encode_flags(encoder: Any, table: np.ndarray, k: int, flags: np.ndarray) -> None:
    """Append iteration ``k``'s per-block apply flags (h, w) of 0/1."""
    probs = np.full(flags.size, table[k] / PROB_ONE, dtype=np.float64)
    encoder.encode(flags.reshape(-1).astype(np.int32), _model(), probs)


def decode_flags(decoder: Any, table: np.ndarray, k: int, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`encode_flags`: (h, w) uint8."""
    probs = np.full(shape[0] * shape[1], table[k] / PROB_ONE, dtype=np.float64)
    return np.asarray(decoder.decode(_model(), probs), dtype=np.uint8).reshape(shape)
