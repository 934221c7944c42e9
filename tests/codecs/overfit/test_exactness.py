"""Bit-exact decoding of overfit streams: integer tables, thread counts, processes, CPU vs GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from recodec.codecs.learned.entropy import TABLE_TOTAL
from recodec.codecs.overfit import exact, tables
from tests.codecs.exactness import digests_over_threads, pixel_digest



def test_tables_are_integer_and_normalised() -> None:
    t = tables.tables()
    for counts in t.counts:
        assert counts.dtype == np.int64 and counts.min() >= 1
        assert np.all(counts.sum(axis=1) == TABLE_TOTAL)
    # A centred row peaks at k = 0; a row whose mean sits 7/8 up peaks at k = 1.
    c0 = t.counts[t.row_class[40 * 8]][t.row_local[40 * 8]]
    c7 = t.counts[t.row_class[40 * 8 + 7]][t.row_local[40 * 8 + 7]]
    half = tables.CLASS_HALF[t.row_class[40 * 8]]
    assert int(np.argmax(c0[:-1])) == half and int(np.argmax(c7[:-1])) == half + 1


def test_table_ratios_do_not_depend_on_libm() -> None:
    # The decimal computation equals a float reference to within float precision.
    for s in (0, 31, 63):
        b = tables.B_MIN * np.exp(s * tables.LOG_STEP)
        assert abs(tables._q_fixed(s) / 2**30 - np.exp(-1 / (8 * b))) < 1e-8


def test_layers_with_huge_weights_are_refused_as_inexact() -> None:
    layer = exact.QLayer(np.full((4, 64), 2**40, dtype=np.int64), np.zeros(4, dtype=np.int64), 0)
    assert not exact.check_layer(layer)


def test_thread_counts_in_process(overfit, stream: bytes) -> None:
    assert len(digests_over_threads(lambda: overfit.decode(stream), (1, 2, 3))) == 1


@pytest.mark.timeout(120)
def test_decode_in_another_process_with_other_thread_counts(overfit, stream: bytes, tmp_path) -> None:
    path = tmp_path / "a.rcof"
    path.write_bytes(stream)
    script = textwrap.dedent(f"""
        import hashlib, numpy as np, torch
        from recodec.codecs.registry import get_codec
        for threads in (1, 3):
            torch.set_num_threads(threads)
            out = get_codec("overfit").decode(open(r"{path}", "rb").read())
            print(hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest())
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=110)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [pixel_digest(overfit.decode(stream))] * 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_decode_identically(overfit, stream: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    from recodec.codecs.overfit.codec import DEVICE_ENV

    cpu = overfit.decode(stream)
    monkeypatch.setenv(DEVICE_ENV, "cuda")
    assert np.array_equal(overfit.decode(stream), cpu)
    gpu_stream = overfit.encode(cpu, iterations=20)  # encoded on the GPU, decoded on both
    gpu_out = overfit.decode(gpu_stream)
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert np.array_equal(overfit.decode(gpu_stream), gpu_out)
