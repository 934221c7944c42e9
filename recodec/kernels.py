"""Compiled twins of hot torch functions: eager until an ahead-of-time compiled package exists.

The per-image metrics are a few dozen elementwise passes over every pixel; run op by op in
eager torch they cost several times the codec (docs/performance.md).  Compiled by Inductor they
become a few fused, vectorised C++ loops, but compiling takes tens of seconds (a C++ compiler
runs), which a one-image job must not wait for.  So a :class:`CompiledTwin` runs the *same*
Python function eagerly until a compiled *package* of it exists for the inputs, then switches.

Each variant (dtypes, which arguments are None, the non-tensor arguments) is exported with
symbolic sizes (:class:`Shapes`) and compiled ahead of time by AOTInductor into a ``.pt2`` file
in the per-user kernel cache (:data:`CACHE_ENV`, default ``~/.cache/recodec/kernels``), keyed by
the function's module source, torch, Python and the CPU.  Building one costs 20-30 s of CPU,
once per machine: in a background thread of a process whose eager calls of that variant took
:data:`COMPILE_AFTER_SECONDS`, one build at a time per machine (file lock), or at once with
``recodec kernels --build``.  Every later process loads a package at its first call in a few
milliseconds (through torch's AOTI runner, without importing Inductor), so even a one-image job
runs the compiled kernels.  A package does not check its inputs: it is called only with
contiguous CPU tensors whose sizes fit the exported ranges (a size the trace baked in would be
silently wrong, which tests/test_kernels.py guards against); any other call, a GPU, a failed
build (no C++ compiler, an unsupported op) and ``RECODEC_COMPILE=0`` run eagerly.

The two agree to float32 rounding (tests/test_kernels.py): fused loops may round the last bit
differently, so a metric within ~1e-6 of a ``--target`` bound could land on the other side of it
depending on which ran; integer-exact sums (PSNR's squared errors) do not change at all.
Environment: ``RECODEC_COMPILE=0`` never compiles or loads, ``RECODEC_COMPILE=sync`` builds a
missing variant in the calling thread before using it (benchmarks and determinism), the default
``auto`` builds in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import inspect
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)

#: Environment variable choosing the mode: ``auto`` (default), ``sync`` or ``0``.
COMPILE_ENV = "RECODEC_COMPILE"
#: In ``auto`` mode a missing variant is built only after its eager calls took this many seconds
#: in this process.  Building costs 20-30 s of CPU and, while it runs, slows the worker's own
#: eager work (they share the GIL): measured on 200 photos (14 s of work), compiling after 1 s
#: made the run 30 % slower than staying eager.  After 30 s it pays back within the job, and
#: every later process on the machine gets the package for free.
COMPILE_AFTER_SECONDS = 30.0


#: Environment variable naming the folder of packaged (ahead-of-time compiled) kernels.
CACHE_ENV = "RECODEC_KERNEL_CACHE"


@dataclass(frozen=True)
class Shapes:
    """Symbolic shapes of a packaged twin's arguments.

    ``args`` has one entry per positional argument: a tuple of dimension names (symbolic,
    shared across arguments) or ints (fixed) for a tensor, None for anything else (baked into
    the package as a constant, and part of the variant key).  ``ranges`` bounds each name,
    inclusive; a call outside them runs eagerly.
    """

    args: tuple[tuple[str | int, ...] | None, ...]
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)

    def sizes(self, args: Sequence[Any]) -> dict[str, int] | None:
        """The value of every dimension name in ``args``, or None when they do not fit."""
        sizes: dict[str, int] = {}
        for spec, a in zip(self.args, args):
            if spec is None or a is None:
                continue
            if a.dim() != len(spec):
                return None
            for dim, n in zip(spec, a.shape):
                if isinstance(dim, int):
                    if n != dim:
                        return None
                elif sizes.setdefault(dim, n) != n:
                    return None
        for dim, n in sizes.items():
            low, high = self.ranges.get(dim, (1, 1 << 31))
            if not low <= n <= high:
                return None
        return sizes


#: A mode set by :func:`forced_mode` (overrides the environment in this process).
_FORCED: list[str] = []


@contextlib.contextmanager
def forced_mode(mode: str) -> Iterator[None]:
    """Run a block in compile mode ``mode`` (``sync``: build what is missing and wait for it)."""
    _FORCED.append(mode)
    try:
        yield
    finally:
        _FORCED.pop()


def compile_mode() -> str:
    """The compile mode: :func:`forced_mode`'s, else :data:`COMPILE_ENV`'s: ``auto``, ``sync`` or ``off``."""
    value = (_FORCED[-1] if _FORCED else os.environ.get(COMPILE_ENV, "auto")).strip().lower()
    if value in ("0", "off", "false", "no", "eager"):
        return "off"
    return "sync" if value == "sync" else "auto"


class CompiledTwin:
    """``fn`` called eagerly until a compiled package of it exists for these inputs' variant.

    A variant's package is loaded from the kernel cache at its first call, or built (in a
    background thread, ``sync`` mode: at once) after its eager calls took
    :data:`COMPILE_AFTER_SECONDS`; a variant that fails to build or run stays eager.
    """

    def __init__(self, fn: Callable[..., Any], *, shapes: Shapes) -> None:
        self.fn = fn
        self.shapes = shapes
        self.ready: set[tuple[Any, ...]] = set()
        self.failed: set[tuple[Any, ...]] = set()
        self.eager_seconds: dict[tuple[Any, ...], float] = {}
        self._packages: dict[tuple[Any, ...], Callable[..., Any]] = {}
        self._looked: set[tuple[Any, ...]] = set()
        self._build_id: str | None = None

    def __call__(self, *args: Any) -> Any:
        """Run the package when it exists for this variant and the inputs fit it, else ``fn``."""
        key = _signature(args)
        usable = _on_cpu(args) and self.shapes.sizes(args) is not None
        if usable and key not in self.ready and key not in self._looked and compile_mode() != "off":
            self._looked.add(key)
            self._load(key)
        if usable and key in self.ready:
            try:
                return self._packages[key](*_contiguous(args, self.shapes))
            except Exception as exc:  # noqa: BLE001 -- a variant that breaks at run time: stay eager
                self.ready.discard(key)
                self.failed.add(key)
                log.warning("kernels: %s falls back to eager (%s: %s)", self.fn.__name__, type(exc).__name__, exc)
        elif usable and self._due(key) and _BUSY.acquire(blocking=False):
            try:
                self._start(key, args)
            except BaseException:
                _BUSY.release()
                raise
            if key in self.ready:  # sync mode built it in this thread
                return self._packages[key](*_contiguous(args, self.shapes))
        started = time.perf_counter()
        result = self.fn(*args)
        self.eager_seconds[key] = self.eager_seconds.get(key, 0.0) + time.perf_counter() - started
        return result

    def package_path(self, key: tuple[Any, ...]) -> Path:
        """Where variant ``key``'s package lives: ``<function>-<build id>-<variant id>.pt2``.

        The build id hashes what the native code depends on (the module's source, torch, Python,
        the CPU), so a new release or machine never loads an old package.
        """
        if self._build_id is None:
            import torch

            module = sys.modules.get(self.fn.__module__)
            source = inspect.getsource(module) if module is not None else inspect.getsource(self.fn)
            self._build_id = _short_hash(repr((self.fn.__module__, torch.__version__, sys.version_info[:2],
                                               _cpu_identity())) + source)
        variant = repr((self.fn.__qualname__, key, self.shapes))
        return kernel_cache() / f"{self._stem()}-{self._build_id}-{_short_hash(variant)}.pt2"

    def _stem(self) -> str:
        return self.fn.__name__.strip("_")

    def _prune(self, current: Path) -> None:
        """Remove this function's packages of other builds (an older release's source): the cache
        would otherwise grow with every upgrade.  Another build sharing the folder rebuilds its own."""
        build = current.stem.split("-")[1]
        for old in current.parent.glob(f"{self._stem()}-*-*.*"):
            if old.stem.split("-")[1] != build and old.suffix in (".pt2", ".failed"):
                with contextlib.suppress(OSError):
                    old.unlink()

    def _load(self, key: tuple[Any, ...]) -> None:
        """Load variant ``key``'s package when the cache has it (milliseconds); a bad file stays eager."""
        try:
            path = self.package_path(key)
            if not path.is_file():
                return
            self._packages[key] = _Package(path)
            self.ready.add(key)
        except Exception as exc:  # noqa: BLE001 -- no source to key on, a truncated or foreign package: eager
            self.failed.add(key)
            log.warning("kernels: cannot load %s's package (%s: %s)", self.fn.__name__, type(exc).__name__, exc)

    def _package(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        """Export variant ``key`` with symbolic sizes, compile it ahead of time and store it atomically."""
        import torch
        from torch.export import export

        tensors, dynamic, baked = _examples(self.shapes, args)
        module = _bound(self.fn, len(args), baked)
        path = self.package_path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.pt2")  # aoti wants the suffix
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch-internal deprecations while tracing, not ours to fix
            program = export(module, tuple(tensors), dynamic_shapes=(tuple(dynamic),))  # one entry: *tensors
            torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        os.replace(tmp, path)

    def _build_package(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        """Package variant ``key`` unless the cache has it (or knows it fails), then load it.

        A failure is remembered beside the package (``.failed``), so other processes on the
        machine do not pay for the same failing export again.
        """
        import torch

        path = self.package_path(key)
        failed = path.with_suffix(".failed")
        with torch.no_grad(), _machine_lock():
            if not path.is_file() and not failed.is_file():  # another process may have built it meanwhile
                self._prune(path)
                try:
                    self._package(key, args)
                except Exception as exc:
                    failed.write_text(f"{type(exc).__name__}: {exc}\n")
                    raise
        if failed.is_file() and not path.is_file():
            raise RuntimeError(f"packaging failed before on this machine ({failed})")
        self._load(key)
        if key not in self.ready:
            raise RuntimeError("the package did not load")

    def _due(self, key: tuple[Any, ...]) -> bool:
        """Whether to build this variant now: not failed, and worth it in this mode."""
        mode = compile_mode()
        if mode == "off" or key in self.failed:
            return False
        return mode == "sync" or self.eager_seconds.get(key, 0.0) >= COMPILE_AFTER_SECONDS

    def _start(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        """Build ``key`` in a background thread (``sync`` mode: here); the caller holds _BUSY."""
        if compile_mode() == "sync":
            self._build(key, args)
        else:
            atexit.register(_finish_at_exit)
            threading.Thread(target=self._build, args=(key, args), name=f"compile-{self.fn.__name__}",
                             daemon=True).start()

    def _build(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        try:
            import torch._inductor.config as inductor_config

            inductor_config.compile_threads = 1  # no pool of compile processes beside a worker
            self._build_package(key, args)
        except Exception as exc:  # noqa: BLE001 -- no compiler, an unsupported op...: stay eager
            self.failed.add(key)
            log.info("kernels: %s stays eager (%s: %s)", self.fn.__name__, type(exc).__name__, exc)
        finally:
            _BUSY.release()


#: Held while one variant compiles (one at a time per process: compiling is CPU- and GIL-heavy).
_BUSY = threading.Lock()
#: Longest wait at interpreter exit for a compile in flight.
EXIT_WAIT_SECONDS = 60.0


def _finish_at_exit() -> None:
    """Let a compile in flight end before the interpreter does (killing it mid-way aborts the process)."""
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while _BUSY.locked() and time.monotonic() < deadline:
        time.sleep(0.05)


def _signature(args: Sequence[Any]) -> tuple[Any, ...]:
    """What makes a package reusable for these arguments: tensor ranks, dtypes and devices, and the
    values of the other arguments (baked into the package)."""
    out: list[Any] = []
    for a in args:
        if hasattr(a, "shape") and hasattr(a, "stride"):
            out.append((a.dim(), str(a.dtype), a.device.type))
        elif isinstance(a, list):
            out.append(tuple(a))
        else:
            out.append(a if a is None or isinstance(a, (int, float, str, bool)) else repr(a))
    return tuple(out)


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One build at a time on this machine: the second worker then finds the first one's package
    in the kernel cache instead of running the C++ compiler again."""
    try:
        import fcntl
    except ImportError:  # not POSIX: compile without the lock
        yield
        return
    path = os.path.join(tempfile.gettempdir(), f"recodec-compile-{os.getuid()}.lock")
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _on_cpu(args: Sequence[Any]) -> bool:
    """True unless some tensor argument lives on another device."""
    return all(getattr(getattr(a, "device", None), "type", "cpu") == "cpu" for a in args)


def kernel_cache() -> Path:
    """The per-user folder of packaged kernels (:data:`CACHE_ENV`, else ``~/.cache/recodec/kernels``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "recodec" / "kernels"


def _short_hash(text: str) -> str:
    """First 16 hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cpu_identity() -> str:
    """What a natively compiled kernel depends on: machine, processor and (on Linux) its flags."""
    flags = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    return f"{platform.machine()}|{platform.processor()}|{_short_hash(flags)}"


def _contiguous(args: Sequence[Any], shapes: Shapes) -> list[Any]:
    """The tensor arguments a package takes, contiguous (it assumes the layout it was traced with)."""
    return [a.contiguous() for spec, a in zip(shapes.args, args) if spec is not None and a is not None]


def _examples(shapes: Shapes, args: Sequence[Any]) -> tuple[list[Any], list[dict[int, Any]], dict[int, Any]]:
    """(example tensors, their symbolic dims, baked non-tensor arguments by position) for ``torch.export``."""
    import torch
    from torch.export import Dim

    sizes = shapes.sizes(args) or {}
    ranges = {name: shapes.ranges.get(name, (1, 1 << 31)) for name in sizes}
    dims = {name: Dim(name, min=low, max=high) for name, (low, high) in ranges.items()}
    # Sizes 0 and 1 would be specialised by the trace: trace at 2 or more (values never matter).
    example = {name: max(n, 2, ranges[name][0]) for name, n in sizes.items()}
    tensors, dynamic, baked = [], [], {}
    for i, (spec, a) in enumerate(zip(shapes.args, args)):
        if spec is None or a is None:
            baked[i] = a
            continue
        tensors.append(torch.zeros([d if isinstance(d, int) else example[d] for d in spec], dtype=a.dtype))
        dynamic.append({j: dims[d] for j, d in enumerate(spec) if isinstance(d, str)})
    return tensors, dynamic, baked


class _Package:
    """A loaded ``.pt2`` package, called with its tensor arguments in order.

    Talks to torch's AOTI runner directly: ``torch._inductor.aoti_load_package`` would import
    Inductor (about 2 s) and re-parse the call spec at every call.
    """

    def __init__(self, path: Path) -> None:
        import torch
        from torch.utils import _pytree as pytree

        self.loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)
        self.out_spec = pytree.treespec_loads(self.loader.get_call_spec()[1])

    def __call__(self, *tensors: Any) -> Any:
        """Run the kernel; outputs in the traced function's structure."""
        from torch.utils import _pytree as pytree

        return pytree.tree_unflatten(self.loader.boxed_run(list(tensors)), self.out_spec)


def _bound(fn: Callable[..., Any], count: int, baked: dict[int, Any]) -> Any:
    """A ``torch.nn.Module`` calling ``fn`` with the arguments in ``baked`` fixed (what ``torch.export`` traces)."""
    import torch

    class Bound(torch.nn.Module):
        def forward(self, *tensors: Any) -> Any:
            it = iter(tensors)
            return fn(*(baked[i] if i in baked else next(it) for i in range(count)))

    return Bound()


__all__ = ["CACHE_ENV", "COMPILE_ENV", "CompiledTwin", "Shapes", "compile_mode", "forced_mode", "kernel_cache"]
