"""Compiled twins of hot torch functions: eager until a background ``torch.compile`` is warm.

The per-image metrics are a few dozen elementwise passes over every pixel; run op by op in
eager torch they cost several times the codec (docs/performance.md).  ``torch.compile``
(Inductor) fuses them into a few vectorised C++ loops (figures: docs/performance.md), but compiling
takes seconds (a C++ compiler runs), which a one-image job must not wait for.  So a
:class:`CompiledTwin` runs the *same* Python function eagerly until its compiled twin,
built in a background thread, is ready for the inputs, then switches.  Anything that goes
wrong while compiling (no C++ compiler, an unsupported op) leaves the eager function in charge.

Only CPU tensors use the compiled twin; on a GPU the eager ops are already memory-bound and
fast.  A small job never compiles: a variant is compiled only once its eager calls have cost
:data:`COMPILE_AFTER_SECONDS` in the process.  The two agree to float32 rounding
(tests/test_kernels.py): fused loops may round the last bit differently, so a metric within
~1e-6 of a ``--target`` bound could land on the other side of it depending on which ran;
integer-exact sums (PSNR's squared errors) do not change at all.  Environment:
``RECODEC_COMPILE=0`` never compiles, ``RECODEC_COMPILE=sync`` compiles a variant in the
calling thread before using it (benchmarks and determinism), the default ``auto`` compiles
in the background.  Inductor caches what it builds on disk
(``TORCHINDUCTOR_CACHE_DIR``, by default under the temporary folder), so later processes
on the machine load the kernels in about a second instead of compiling them.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import tempfile
import threading
import time
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)

#: Environment variable choosing the mode: ``auto`` (default), ``sync`` or ``0``.
COMPILE_ENV = "RECODEC_COMPILE"
#: In ``auto`` mode a variant is compiled only after its eager calls took this many seconds
#: in this process.  Compiling costs 5-30 s of CPU and, while it runs, slows the worker's own
#: eager work (they share the GIL): measured on 200 photos (14 s of work), compiling after 1 s
#: made the run 30 % slower than staying eager.  After 30 s it pays back within the job.
COMPILE_AFTER_SECONDS = 30.0


def compile_mode() -> str:
    """The compile mode from :data:`COMPILE_ENV`: ``auto``, ``sync`` or ``off``."""
    value = os.environ.get(COMPILE_ENV, "auto").strip().lower()
    if value in ("0", "off", "false", "no", "eager"):
        return "off"
    return "sync" if value == "sync" else "auto"


class CompiledTwin:
    """``fn`` called eagerly until its ``torch.compile`` twin is built for these inputs' shapes.

    Each input signature (dtypes, which arguments are None, and shapes and strides unless
    ``dynamic``) is a variant, compiled once in a background thread after its eager calls
    took :data:`COMPILE_AFTER_SECONDS` (one compile at a time per process); until then, and
    for any variant that fails to compile, the eager function runs.  ``dynamic=True`` compiles
    one kernel for any shape and stride; static twins compile one per shape.
    """

    def __init__(self, fn: Callable[..., Any], *, dynamic: bool = False) -> None:
        self.fn = fn
        self.dynamic = dynamic
        self.ready: set[tuple[Any, ...]] = set()
        self.failed: set[tuple[Any, ...]] = set()
        self.eager_seconds: dict[tuple[Any, ...], float] = {}
        self._compiled: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        """Run the compiled twin when it is built for this variant and the inputs are on the CPU."""
        key = _signature(args, self.dynamic)
        if key in self.ready and not _BUSY.locked():
            try:
                return self._compiled(*args)  # type: ignore[misc]
            except Exception as exc:  # noqa: BLE001 -- a variant that breaks at run time: stay eager
                self.ready.discard(key)
                self.failed.add(key)
                log.warning("kernels: %s falls back to eager (%s: %s)", self.fn.__name__, type(exc).__name__, exc)
        elif self._due(key, args) and _BUSY.acquire(blocking=False):
            try:
                self._start(key, args)
            except BaseException:
                _BUSY.release()
                raise
            if key in self.ready:  # sync mode built it in this thread
                return self._compiled(*args)  # type: ignore[misc]
        started = time.perf_counter()
        result = self.fn(*args)
        self.eager_seconds[key] = self.eager_seconds.get(key, 0.0) + time.perf_counter() - started
        return result

    def _due(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> bool:
        """Whether to compile this variant now: CPU inputs, not failed, and worth it in this mode."""
        mode = compile_mode()
        if mode == "off" or key in self.failed or not _on_cpu(args):
            return False
        return mode == "sync" or self.eager_seconds.get(key, 0.0) >= COMPILE_AFTER_SECONDS

    def _start(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        """Build ``key`` in a background thread (``sync`` mode: here); the caller holds _BUSY."""
        # The very arguments, not copies: a copy's strides differ from a view's, so the kernel
        # would be recompiled at its first real call.  The kernels only read their inputs.
        if compile_mode() == "sync":
            self._build(key, args)
        else:
            atexit.register(_finish_at_exit)
            threading.Thread(target=self._build, args=(key, args), name=f"compile-{self.fn.__name__}",
                             daemon=True).start()

    def _build(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> None:
        try:
            import torch
            import torch._inductor.config as inductor_config

            inductor_config.compile_threads = 1  # no pool of compile processes beside a worker
            if self._compiled is None:
                # Static unless asked: automatic dynamic shapes made reductions several times slower.
                self._compiled = torch.compile(self.fn, dynamic=self.dynamic)
            with torch.no_grad(), _machine_lock():
                self._compiled(*args)
            self.ready.add(key)
        except Exception as exc:  # noqa: BLE001 -- no compiler, an unsupported op...: stay eager
            self.failed.add(key)
            log.info("kernels: %s stays eager (%s: %s)", self.fn.__name__, type(exc).__name__, exc)
        finally:
            _BUSY.release()

    def wait(self, timeout: float = 600.0) -> bool:
        """Block until no compile is in flight in this process; True when some variant is ready."""
        deadline = time.monotonic() + timeout
        while _BUSY.locked() and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self.ready)


#: Held while one variant compiles (one at a time per process: compiling is CPU- and GIL-heavy).
_BUSY = threading.Lock()
#: Longest wait at interpreter exit for a compile in flight.
EXIT_WAIT_SECONDS = 60.0


def _finish_at_exit() -> None:
    """Let a compile in flight end before the interpreter does (killing it mid-way aborts the process)."""
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while _BUSY.locked() and time.monotonic() < deadline:
        time.sleep(0.05)


def _signature(args: Sequence[Any], dynamic: bool = False) -> tuple[Any, ...]:
    """What makes a compile of these arguments reusable (shapes and strides only when static)."""
    out: list[Any] = []
    for a in args:
        if hasattr(a, "shape") and hasattr(a, "stride"):
            shape = (a.dim(),) if dynamic else (tuple(a.shape), a.stride())
            out.append((*shape, str(a.dtype), a.device.type))
        elif isinstance(a, list):
            out.append(tuple(a))
        else:
            out.append(a if a is None or isinstance(a, (int, float, str, bool)) else repr(a))
    return tuple(out)


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One compile at a time on this machine: the second worker then finds the first one's kernel
    in Inductor's on-disk cache (about a second) instead of running the C++ compiler again."""
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


__all__ = ["COMPILE_ENV", "CompiledTwin", "compile_mode"]
