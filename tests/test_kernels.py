"""Compiled metric kernels: same numbers as eager torch, and eager whenever compiling is not possible."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import recodec.kernels as kernels
import recodec.metrics as metrics
from recodec.metrics import compute_metrics


def _pair(shape: tuple[int, ...], dtype: type, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    base = (np.sin(xx / 7.0) + np.cos(yy / 5.0) + 2) / 4 * top * 0.8
    ref = np.repeat(base[..., None], shape[2], axis=2) + rng.normal(0, top * 0.02, shape)
    ref = np.clip(ref, 0, top).astype(dtype)
    dec = np.clip(ref.astype(np.float64) + rng.normal(0, top * 0.01, shape), 0, top).astype(dtype)
    return ref, dec


#: Building kernels runs a C++ compiler (Inductor's); without one every twin stays eager.
needs_compiler = pytest.mark.skipif(
    not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c),
    reason="no C++ compiler: kernels cannot be built here")


#: A one-dimensional twin's shapes for the tests with toy functions.
TOY = kernels.Shapes((("n",),), {"n": (2, 64)})


def _fresh_twins(monkeypatch: pytest.MonkeyPatch) -> None:
    """New twins, so no state leaks between tests (or from other tests in the process)."""
    for name in ("_SSIM_STRIP", "_POINTWISE_CHUNK", "_DOWN_EVEN"):
        twin = getattr(metrics, name)
        monkeypatch.setattr(metrics, name, kernels.CompiledTwin(twin.fn, shapes=twin.shapes))


@pytest.fixture(scope="module")
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One kernel cache for this module: the packages are built once (about 30 s of CPU each)."""
    return str(tmp_path_factory.mktemp("kernels"))


#: (shape, dtype, nodata): RGB, gray with nodata, many 16-bit bands with nodata at odd sizes,
#: a narrow image whose coarse scales fall below the packaged ranges.
CASES = [((90, 120, 3), np.uint8, None), ((70, 80, 1), np.uint16, 0), ((41, 333, 7), np.uint16, 0),
         ((200, 13, 3), np.uint8, None)]


def _case_metrics() -> list:
    out = []
    for i, (shape, dtype, nodata) in enumerate(CASES):
        ref, dec = _pair(shape, dtype, seed=i)
        if nodata is not None:
            ref[:8] = nodata
        out.append(compute_metrics(ref, dec, nodata=nodata))
    return out


@pytest.mark.slow
@needs_compiler
def test_cli_builds_packages_that_agree_with_eager(monkeypatch: pytest.MonkeyPatch, kernel_cache: str) -> None:
    """`recodec kernels --build` makes the common packages; they give eager torch's numbers.

    One test, because each package costs 20-30 s of CPU to build: the CLI builds them, then the
    cases below (RGB, gray and 7-band 16-bit with nodata, narrow sizes) reuse them.  Two of the
    common variants (with and without a nodata mask) make every package these cases need.
    """
    import json

    from click.testing import CliRunner

    from recodec.cli import cli

    monkeypatch.setenv(kernels.CACHE_ENV, kernel_cache)
    monkeypatch.setenv(kernels.COMPILE_ENV, "0")  # --build compiles whatever the environment says
    _fresh_twins(monkeypatch)
    monkeypatch.setattr(metrics, "WARM_CASES", (((64, 64, 3), "uint8", None), ((64, 64, 3), "uint16", 0)))
    res = CliRunner().invoke(cli, ["kernels", "--build", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert {"ssim_strip", "pointwise_chunk", "down_even"} <= {k["name"].split("-")[0] for k in listed}
    assert kernels.compile_mode() == "off"  # the forced mode ended with the command

    _fresh_twins(monkeypatch)  # as in a new process: the packages are loaded from the cache
    eager = _case_metrics()
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    packaged = _case_metrics()
    twins = [metrics._SSIM_STRIP, metrics._POINTWISE_CHUNK, metrics._DOWN_EVEN]
    if not all(t.ready for t in twins):
        pytest.skip(f"AOT compiling unavailable here ({[t.failed for t in twins]})")
    assert len(metrics._SSIM_STRIP.ready) == 2  # without and with a nodata mask
    assert len(list(kernels.kernel_cache().glob("*.pt2"))) == len(listed)  # the CLI's packages served every case
    for e, c in zip(eager, packaged):
        assert c.psnr == e.psnr and c.max_abs_error == e.max_abs_error  # integer-exact sums
        assert c.psnr_per_band == e.psnr_per_band
        assert abs(c.ssim - e.ssim) < 1e-6 and abs(c.ms_ssim - e.ms_ssim) < 1e-6
        assert c.sam is None or abs(c.sam - e.sam) < 1e-6 * max(1.0, e.sam)


@pytest.mark.slow
@needs_compiler
def test_a_new_process_loads_packages_without_building(monkeypatch: pytest.MonkeyPatch, kernel_cache: str) -> None:
    import torch.export

    monkeypatch.setenv(kernels.CACHE_ENV, kernel_cache)
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    _fresh_twins(monkeypatch)
    _case_metrics()  # builds whatever the module's first test did not
    _fresh_twins(monkeypatch)  # as in a new worker process

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("the package should have been loaded, not built again")

    monkeypatch.setattr(torch.export, "export", no_export)
    _case_metrics()
    assert metrics._SSIM_STRIP.ready and not metrics._SSIM_STRIP.failed


@pytest.mark.slow
@needs_compiler
def test_auto_mode_loads_existing_packages_at_the_first_call(monkeypatch: pytest.MonkeyPatch,
                                                             kernel_cache: str) -> None:
    import sys

    monkeypatch.setenv(kernels.CACHE_ENV, kernel_cache)
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    _fresh_twins(monkeypatch)
    _case_metrics()  # the packages exist from here on
    _fresh_twins(monkeypatch)
    monkeypatch.setenv(kernels.COMPILE_ENV, "auto")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", math.inf)  # nothing may be built here
    monkeypatch.delitem(sys.modules, "torch._inductor.package", raising=False)
    ref, dec = _pair((90, 120, 3), np.uint8)
    compute_metrics(ref, dec)
    assert metrics._SSIM_STRIP.ready and metrics._POINTWISE_CHUNK.ready and metrics._DOWN_EVEN.ready
    assert "torch._inductor.package" not in sys.modules  # loaded without importing Inductor's loader
    monkeypatch.setenv(kernels.COMPILE_ENV, "0")
    _fresh_twins(monkeypatch)
    compute_metrics(ref, dec)
    assert not metrics._SSIM_STRIP.ready  # RECODEC_COMPILE=0 stays eager


def test_shapes_accept_only_consistent_sizes_in_range() -> None:
    import torch

    shapes = kernels.Shapes((("n", "r"), ("n", 1), None), {"r": (12, 100)})
    assert shapes.sizes([torch.zeros(2, 20), torch.zeros(2, 1), [1.0]]) == {"n": 2, "r": 20}
    assert shapes.sizes([torch.zeros(2, 20), torch.zeros(3, 1), None]) is None  # n disagrees
    assert shapes.sizes([torch.zeros(2, 11), torch.zeros(2, 1), None]) is None  # r below its range
    assert shapes.sizes([torch.zeros(2, 20), torch.zeros(2, 2), None]) is None  # fixed size differs
    assert shapes.sizes([torch.zeros(2, 20, 1), torch.zeros(2, 1), None]) is None  # rank differs


def test_a_failed_package_is_not_retried_by_other_processes(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    import torch

    calls: list[int] = []

    def add_one(t: torch.Tensor) -> torch.Tensor:
        return t + 1

    def broken(self: kernels.CompiledTwin, key: object, args: object) -> None:
        calls.append(1)
        raise RuntimeError("export failed")

    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    monkeypatch.setattr(kernels.CompiledTwin, "_package", broken)
    for _ in range(2):  # two "processes"
        twin = kernels.CompiledTwin(add_one, shapes=TOY)
        assert torch.equal(twin(torch.zeros(4)), torch.ones(4)) and twin.failed
    assert calls == [1] and list(tmp_path.glob("*.failed"))


def test_failed_compile_stays_eager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch
    import torch.export

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no C++ compiler")

    _fresh_twins(monkeypatch)
    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(torch.export, "export", broken)
    ref, dec = _pair((40, 50, 3), np.uint8)
    monkeypatch.setenv(kernels.COMPILE_ENV, "0")
    eager = compute_metrics(ref, dec)
    monkeypatch.setenv(kernels.COMPILE_ENV, "sync")
    again = compute_metrics(ref, dec)
    assert metrics._SSIM_STRIP.failed and not metrics._SSIM_STRIP.ready
    assert again.as_dict() == eager.as_dict()


def test_auto_mode_compiles_only_after_eager_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    calls: list[str] = []
    twin = kernels.CompiledTwin(lambda a: a + 1, shapes=TOY)
    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(twin, "_start", lambda key, args: calls.append("start"))
    monkeypatch.setenv(kernels.COMPILE_ENV, "auto")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", math.inf)
    assert torch.equal(twin(torch.zeros(4)), torch.ones(4)) and calls == []  # a small job never pays for a build
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", 0.0)
    twin(torch.zeros(4))
    assert calls == ["start"]
    kernels._BUSY.release()  # the stubbed _start did not hand the lock to a thread


def test_off_mode_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    twin = kernels.CompiledTwin(lambda a: a * 2, shapes=TOY)
    monkeypatch.setenv(kernels.COMPILE_ENV, "off")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", 0.0)
    assert all(torch.equal(twin(torch.full((3,), 3.0)), torch.full((3,), 6.0)) for _ in range(3))
    assert not twin.ready and not twin.failed and not kernels._BUSY.locked()


def test_compile_mode_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, mode in (("0", "off"), ("eager", "off"), ("sync", "sync"), ("", "auto"), ("auto", "auto")):
        monkeypatch.setenv(kernels.COMPILE_ENV, value)
        assert kernels.compile_mode() == mode


def test_a_corrupt_package_stays_eager(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    def add_one(t: torch.Tensor) -> torch.Tensor:
        return t + 1

    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv(kernels.COMPILE_ENV, "auto")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_SECONDS", math.inf)
    twin = kernels.CompiledTwin(add_one, shapes=TOY)
    key = kernels._signature((torch.zeros(4),))
    twin.package_path(key).parent.mkdir(parents=True, exist_ok=True)
    twin.package_path(key).write_bytes(b"not a package")
    assert torch.equal(twin(torch.zeros(4)), torch.ones(4))
    assert key in twin.failed and not twin.ready


def test_building_removes_packages_of_other_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    def double(t: torch.Tensor) -> torch.Tensor:
        return t * 2

    monkeypatch.setenv(kernels.CACHE_ENV, str(tmp_path))
    built: list[Path] = []
    monkeypatch.setattr(kernels, "_Package", lambda path: (lambda *tensors: tensors[0] * 2))
    twin = kernels.CompiledTwin(double, shapes=TOY)
    key = kernels._signature((torch.zeros(4),))
    path = twin.package_path(key)
    stale = path.with_name(f"double-{'0' * 16}-{path.stem.split('-')[2]}.pt2")
    other_fn = path.with_name(f"halve-{'0' * 16}-{'1' * 16}.pt2")
    for f in (stale, other_fn):
        f.write_bytes(b"old")
    monkeypatch.setattr(twin, "_package", lambda key, args: (built.append(path), path.write_bytes(b"new")))
    twin._build_package(key, (torch.zeros(4),))
    assert built == [path] and path.exists() and not stale.exists() and other_fn.exists()
    assert twin.ready == {key}
