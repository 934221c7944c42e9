"""Bit-exact decoding: integer primitives, thread counts, processes, CPU vs GPU."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from recodec.codecs.learned import integer as I
from tests.codecs.exactness import digests_over_threads, pixel_digest


def test_isqrt_is_exact() -> None:
    rng = np.random.default_rng(0)
    n = torch.from_numpy(rng.integers(0, 2**52, 20000).astype(np.float64))
    squares = torch.arange(0, 2**26, 4099, dtype=torch.float64) ** 2
    n = torch.cat([n, squares, squares - 1, squares + 1]).clamp_min(0)
    r = I.isqrt(n)
    assert torch.all(r * r <= n) and torch.all((r + 1) * (r + 1) > n)


def test_pow2_is_exact() -> None:
    e = torch.arange(-200, 201)
    got = I.pow2(e, torch.zeros(1, dtype=torch.float64))
    assert all(float(g) == 2.0 ** int(k) for g, k in zip(got, e))


def test_check_bounds_rejects_layers_that_could_be_inexact() -> None:
    w = torch.full((4, 64, 5, 5), 2.0**40, dtype=torch.float64)
    layer = I.IntConv(w, torch.zeros(4, dtype=torch.float64), torch.zeros(4), 0, 0, 1, False, False)
    with pytest.raises(ValueError, match="2\\*\\*52"):
        I.check_bounds([layer])


def test_shipped_integer_networks_are_provably_exact(hyperprior) -> None:
    rt = hyperprior.runtime
    I.check_bounds(rt.gs.layers, final_gain=255)
    I.check_bounds(rt.hs.layers, in_max=float(np.abs(rt.tab_z.offsets).max() + rt.tab_z.lengths.max()))



def test_thread_counts_in_process(hyperprior, photo: np.ndarray) -> None:
    data = hyperprior.encode(photo, quality=4)
    assert len(digests_over_threads(lambda: hyperprior.decode(data), (1, 2, 4))) == 1


@pytest.mark.timeout(120)
def test_decode_in_other_processes_with_other_thread_counts(hyperprior, factorized, photo: np.ndarray, tmp_path) -> None:
    streams = {"hyperprior": hyperprior.encode(photo, quality=5),
               "factorized": factorized.encode(photo, quality=2)}
    expected = {}
    for name, data in streams.items():
        (tmp_path / f"{name}.rclc").write_bytes(data)
        codec = hyperprior if name == "hyperprior" else factorized
        expected[name] = pixel_digest(codec.decode(data))
    script = textwrap.dedent(f"""
        import hashlib, sys, numpy as np, torch
        from recodec.codecs.registry import get_codec
        for threads in (1, 3):
            torch.set_num_threads(threads)
            for name in ("hyperprior", "factorized"):
                out = get_codec(name).decode(open(r"{tmp_path}/" + name + ".rclc", "rb").read())
                print(name, threads, hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest())
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=110)
    assert res.returncode == 0, res.stderr
    lines = [ln.split() for ln in res.stdout.splitlines()]
    assert len(lines) == 4
    for name, _threads, digest in lines:
        assert digest == expected[name]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_decode_identically(photo: np.ndarray) -> None:
    from recodec.codecs.learned.codec import HyperpriorCodec

    cpu, gpu = HyperpriorCodec(device="cpu"), HyperpriorCodec(device="cuda")
    for data in (cpu.encode(photo, quality=4), gpu.encode(photo, quality=4)):
        assert np.array_equal(cpu.decode(data), gpu.decode(data))
