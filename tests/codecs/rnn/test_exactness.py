"""The integer decoder: gate tables, integer GRU vs float GRU, provable bounds, cross-process identity."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import textwrap

import numpy as np
import torch

from recodec.codecs.learned import integer as LI
from recodec.codecs.rnn import integer as RI
from recodec.codecs.rnn.export import _gru_state
from recodec.codecs.rnn.models import ConvGRU
from recodec.codecs.rnn.runtime import decoder_from_state


def test_gate_tables_are_accurate() -> None:
    sig, tanh = RI.make_luts()
    x = (torch.arange(-RI.LUT_RANGE, RI.LUT_RANGE + 1, dtype=torch.float64) / 2**RI.LUT_FRAC)
    assert torch.all((sig / RI.ONE - torch.sigmoid(x)).abs() <= 0.5 / RI.ONE)
    assert torch.all((tanh / RI.ONE - torch.tanh(x)).abs() <= 0.5 / RI.ONE)
    assert sig.dtype == torch.int32 and int(sig[-1]) <= RI.ONE and int(tanh[0]) >= -RI.ONE


def test_integer_gru_tracks_the_float_gru() -> None:
    torch.manual_seed(0)
    gru = ConvGRU(8, 8).double()
    with torch.no_grad():
        for p in gru.parameters():
            p.mul_(0.5)
    state = {**_gru_state("g", gru, 10)}
    sig, tanh = RI.make_luts()
    state.update({"lut.sigmoid": sig, "lut.tanh": tanh})
    igru = RI.IntGRU(LI.layer_from_state("g.wx", state), LI.layer_from_state("g.wh", state),
                     sig.double(), tanh.double())
    h_f, h_i = None, None
    for step in range(4):
        x = torch.rand(1, 8, 6, 6, dtype=torch.float64) * 2 - 1
        h_f = gru(x, h_f)
        h_i = igru(torch.floor(x * 2**10 + 0.5), h_i)
        assert h_i.abs().max() <= RI.ONE and torch.equal(h_i, torch.floor(h_i))
        assert float((h_i / RI.ONE - h_f.detach()).abs().max()) < 0.01, step


def test_shipped_decoder_is_provably_exact(rnn) -> None:
    state = torch.load(rnn.weights, map_location="cpu", weights_only=True)
    dec = decoder_from_state(state)
    for conv in (dec.inp, dec.g1.wx, dec.g2.wx, dec.c3, dec.c4, dec.out):
        LI.check_bounds([conv])
    for conv in (dec.g1.wh, dec.g2.wh):
        LI.check_bounds([conv], in_max=RI.ONE)
    # Reset-gate product and state update stay far inside float64's exact integers.
    assert RI.PRE_CLAMP * RI.ONE < LI.EXACT_LIMIT and 2 * RI.ONE * RI.ONE < LI.EXACT_LIMIT
    assert math.isclose(float(state["lut.sigmoid"][RI.LUT_RANGE]), RI.ONE / 2)


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def test_decode_is_identical_across_thread_counts_and_processes(rnn, photo: np.ndarray, tmp_path) -> None:
    data = rnn.encode(photo[:40, :56], iterations=3)
    (tmp_path / "s.rcrn").write_bytes(data)
    before = torch.get_num_threads()
    try:
        digests = set()
        for threads in (1, 2):
            torch.set_num_threads(threads)
            digests.add(_digest(rnn.decode(data)))
    finally:
        torch.set_num_threads(before)
    assert len(digests) == 1
    script = textwrap.dedent(f"""
        import hashlib, numpy as np, torch
        from recodec.codecs.registry import get_codec
        torch.set_num_threads(3)
        out = get_codec("rnn").decode(open(r"{tmp_path}/s.rcrn", "rb").read())
        print(hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest())
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == list(digests)
