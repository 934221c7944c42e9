"""The rnn codec's context models: encoder and decoder agree, the logistic model learns dependent bits."""

from __future__ import annotations

import numpy as np
import pytest

from recodec.codecs.rnn import context as C

constriction = pytest.importorskip("constriction")


def _round_trip(model: C.ContextModel, codes: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Encode ``codes`` (per iteration (bits, h, w)) with ``model``, decode them; returns the bits and the words."""
    enc = constriction.stream.queue.RangeEncoder()
    prev = None
    for k, u in enumerate(codes):
        C.encode_iteration(enc, model, k, u, prev)
        prev = u
    words = enc.get_compressed()
    dec = constriction.stream.queue.RangeDecoder(words)
    out, prev = [], None
    for k, u in enumerate(codes):
        prev = C.decode_iteration(dec, model, k, u.shape[0], u.shape[1:], prev)
        out.append(prev)
    return out, 32 * len(words)


def _logistic(rng: np.random.Generator, iterations: int, bits: int) -> C.LogisticContext:
    weights = rng.integers(-3000, 3000, (iterations, bits, 2 * bits + 1)).astype(np.int32)
    return C.LogisticContext(weights, C.logit_table())


@pytest.mark.parametrize("kind", ["logistic", "table"])
def test_decoder_channel_probabilities_equal_the_encoders(kind: str) -> None:
    """The decoder sees only channels < c; its P(1) must equal the encoder's all-at-once P(1) exactly."""
    rng = np.random.default_rng(1)
    model: C.ContextModel = (_logistic(rng, 3, 6) if kind == "logistic"
                             else C.TableContext(rng.integers(C.P_MIN, C.PROB_ONE - C.P_MIN, C.table_size(3, 6))))
    prev = None
    for k in range(3):
        u = rng.integers(0, 2, (6, 5, 7)).astype(np.uint8)
        full = model.iteration_probs(k, u, prev)
        seen = rng.integers(0, 2, u.shape).astype(np.uint8)  # not decoded yet: noise, which must not matter
        for c, p1 in enumerate(model.channel_probs(k, seen, prev)):
            assert np.array_equal(p1, full[c])
            seen[c] = u[c]  # what the decoder does next
        assert c == 5
        prev = u


@pytest.mark.parametrize("kind", ["logistic", "table"])
def test_round_trip_is_exact(kind: str) -> None:
    rng = np.random.default_rng(2)
    model: C.ContextModel = (_logistic(rng, 4, 8) if kind == "logistic"
                             else C.TableContext(rng.integers(C.P_MIN, C.PROB_ONE - C.P_MIN, C.table_size(4, 8))))
    codes = [rng.integers(0, 2, (8, 6, 9)).astype(np.uint8) for _ in range(4)]
    decoded, _ = _round_trip(model, codes)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, codes))


def test_malformed_logistic_weights_are_a_codec_error() -> None:
    from recodec.errors import CodecError

    with pytest.raises(CodecError, match="2C \\+ 1"):
        C.LogisticContext(np.zeros((2, 4, 8), np.int32), C.logit_table())
    with pytest.raises(CodecError):
        C.LogisticContext(np.zeros((2, 4, 9), np.int32), C.logit_table()[:-1])


def test_probabilities_stay_clamped() -> None:
    lut = C.logit_table()
    assert lut.min() == C.P_MIN and lut.max() == C.PROB_ONE - C.P_MIN
    assert np.all(np.diff(lut) >= 0) and lut[C.LOGIT_MAX] == C.PROB_ONE // 2
    huge = C.LogisticContext(np.full((1, 2, 5), 10**6, np.int32), lut)
    assert huge.iteration_probs(0, np.ones((2, 3, 3), np.uint8), None).max() == C.PROB_ONE - C.P_MIN


def _dependent_codes(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """Codes (K=2, C=4, 8, 8): channels 0, 1 random; 2 repeats 0; 3 inverts 1, then repeats itself; 5 % noise."""
    out = []
    for _ in range(n):
        u = np.zeros((2, 4, 8, 8), np.uint8)
        for k in range(2):
            u[k, :2] = rng.integers(0, 2, (2, 8, 8))
            u[k, 2] = u[k, 0] ^ (rng.random((8, 8)) < 0.05)
            u[k, 3] = (u[k - 1, 3] if k else 1 - u[k, 1]) ^ (rng.random((8, 8)) < 0.05)
        out.append(u)
    return out


def _bits_per_bit(model: C.ContextModel, held: list[np.ndarray]) -> float:
    total = 0
    for u in held:
        decoded, cost = _round_trip(model, list(u))
        assert all(np.array_equal(a, b) for a, b in zip(decoded, u))
        total += cost
    return total / sum(u.size for u in held)


def test_fitted_logistic_model_follows_channels_the_table_cannot_see() -> None:
    """Channel 2 repeats channel 0 and channel 3 inverts channel 1: the logistic model sees both, the
    table (channel c - 1 only) neither; ideal cost (1 + 1 + 2 H(0.05)) / 4 = 0.64 bits per bit."""
    torch = pytest.importorskip("torch")
    from recodec.codecs.rnn.export import fit_logistic, fit_table

    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    train, held = _dependent_codes(rng, 60), _dependent_codes(rng, 20)
    logistic = _bits_per_bit(C.LogisticContext(fit_logistic(train), C.logit_table()), held)
    table = _bits_per_bit(C.TableContext(fit_table(train)), held)
    assert logistic < 0.72
    assert table > logistic + 0.15
    total = sum(u.size for u in held)
    ideal = C.ideal_bits(C.LogisticContext(fit_logistic(train), C.logit_table()), held).sum() / total
    assert ideal <= logistic <= ideal + 64 * len(held) / total  # the coder's overhead: its last two words


def test_shipped_weights_hold_the_logistic_model(rnn) -> None:
    """The shipped file carries fitted logistic weights; retired files keep their count tables."""
    rt = rnn.runtime
    assert isinstance(rt.context, C.LogisticContext)
    assert rt.context.weights.shape == (rt.arch.iterations, rt.arch.bits, 2 * rt.arch.bits + 1)
    assert np.abs(rt.context.weights).max() > 0
