"""Training precision: which autocast pays off on this machine.

bfloat16 autocast is several times faster than float32 where the CPU computes bf16 natively
(AVX-512 BF16 or AMX) and on GPUs, but about 3.6x *slower* on AVX2-only CPUs, where it is
emulated (measured on an AVX2 EPYC, docs/overfitted.md).  ``"auto"`` picks per machine.
"""

from __future__ import annotations

import functools

#: Accepted training precisions; ``"auto"`` resolves per device with :func:`resolve_precision`.
PRECISIONS = ("auto", "bf16", "fp32")


@functools.cache  # asked on every training step (through resolve_precision); the CPU does not change
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX)."""
    import torch

    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: str) -> str:
    """``precision`` with ``"auto"`` replaced by ``"bf16"`` (GPU, native-bf16 CPU) or ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if not str(device).startswith("cpu") or native_bf16() else "fp32"
