"""Running the generative decoder networks: pinned weights, tiles, the seeded samplers.

Weights live in ``weights/`` with their SHA-256 in ``weights/pins.json`` (checked before
``torch.load(..., weights_only=True)``, as for the learned codecs).  Images are processed in
tiles with a margin wider than the U-Net's receptive field, so memory is bounded and a
tiled result equals the whole-image one up to float rounding.  Every random draw comes from
one ``torch.Generator`` seeded by the caller, drawn for the whole image (not per tile).

Samplers (the design of docs/generative.md):

* ``steps == 1``: the deterministic *mean* view ``F(y, y, t=1)`` - no noise, no seed.
* ``steps in 2..8``: InDI-style few-step sampling with re-noising::

      x <- y + s * eps
      for t = 1, 1 - 1/N, ..., 1/N:
          x0 <- F(x, y, t)
          x  <- (1 - t') x0 + t' y + s t' eps'       (t' = t - 1/N; fresh eps')
      return x0
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np

from recodec.errors import CodecError

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: Same switch as the learned codecs: "cuda" moves the decoder networks to the GPU.
DEVICE_ENV = "RECODEC_LEARNED_DEVICE"
MAX_STEPS = 8
TILE = 256
#: Wider than the U-Net's receptive field (about 20 px), so tiles do not change the result.
MARGIN = 24

_NETS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def pick_device(device: str | None = None) -> str:
    """``device``, else the environment's choice; CUDA falls back to the CPU when absent."""
    import torch

    choice = device or os.environ.get(DEVICE_ENV, "cpu")
    return "cuda" if choice.startswith("cuda") and torch.cuda.is_available() else "cpu"


def load_net(name: str, device: str = "cpu", weights_dir: Path = WEIGHTS_DIR) -> tuple[Any, str]:
    """(network in eval mode, weights SHA-256) of ``weights_dir/<name>.pt``, checked against its pin."""
    path = weights_dir / f"{name}.pt"
    key = (str(path.resolve()), device)
    with _LOCK:
        if key in _NETS:
            return _NETS[key]
        from recodec.codecs.generative.nets import build_net
        from recodec.codecs.weights import load_pinned

        state, actual = load_pinned(path, "generative")
        # Generators written before the rate input have no "rate_input" entry.
        options = {"rate_input": bool(state.get("rate_input", False))} if state["kind"] == "generator" else {}
        net = build_net(str(state["kind"]), int(state["width"]), **options)
        net.load_state_dict(state["net"])
        _NETS[key] = (net.to(device).eval(), actual)
        return _NETS[key]


def to_tensor(rgb: np.ndarray, device: str = "cpu") -> Any:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div(255.0)[None].to(device)


def to_uint8(x: Any) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 (rounded, clamped)."""
    return np.ascontiguousarray((x[0].clamp(0, 1) * 255.0).round().to("cpu").byte().permute(1, 2, 0).numpy())


def tiled(fn: Callable[..., Any], *inputs: Any, tile: int = TILE, margin: int = MARGIN) -> Any:
    """``fn(*inputs)`` on (1, C, H, W) tensors, tile by tile with ``margin`` px of context."""
    import torch

    h, w = inputs[0].shape[2:]
    out = torch.empty((1, 3, h, w), dtype=torch.float32, device=inputs[0].device)
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(0, top - margin), max(0, left - margin)
            t1, l1 = min(h, top + tile + margin), min(w, left + tile + margin)
            part = fn(*(x[:, :, t0:t1, l0:l1] for x in inputs))
            bh, bw = min(tile, h - top), min(tile, w - left)
            out[:, :, top:top + bh, left:left + bw] = part[:, :, top - t0:top - t0 + bh, left - l0:left - l0 + bw]
    return out


def check_steps(steps: int) -> int:
    """``steps`` if in 1..MAX_STEPS, else a CodecError."""
    if not 1 <= int(steps) <= MAX_STEPS:
        raise CodecError(f"generative: steps must be 1..{MAX_STEPS}, got {steps}")
    return int(steps)


def restore(net: Any, y: Any, *, steps: int = 1, seed: int = 0) -> Any:
    """Sample ``x`` given the degraded ``y`` (1, 3, H, W) with ``steps`` (1 = deterministic mean)."""
    import torch

    from recodec.codecs.generative.nets import NOISE_SCALE as S

    steps = check_steps(steps)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))

    def noise() -> Any:
        return torch.randn(y.shape, generator=gen).to(y.device)

    def step(x: Any, t: float) -> Any:
        tt = torch.full((1,), t, device=y.device)
        return tiled(lambda xi, yi: net(xi, yi, tt), x, y)

    with torch.no_grad():
        if steps == 1:
            return step(y, 1.0)
        x = y + S * noise()
        for i in range(steps):
            t, t_next = 1.0 - i / steps, 1.0 - (i + 1) / steps
            x0 = step(x, t)
            if t_next > 0:
                x = (1 - t_next) * x0 + t_next * y + S * t_next * noise()
        return x0


def generate(net: Any, x_mse: Any, *, realism: float = 1.0, seed: int = 0, quality: int | None = None) -> Any:
    """The GAN decoder's output for the MSE reconstruction ``x_mse`` at ``realism`` in [0, 1].

    ``quality`` is the stream's rate point, which a rate-conditioned generator needs.
    """
    import torch

    from recodec.codecs.generative.nets import rate_level

    if not 0.0 <= float(realism) <= 1.0:
        raise CodecError(f"generative: realism must be in [0, 1], got {realism}")
    if getattr(net, "rate_input", False) and quality is None:
        raise CodecError("generative: this GAN decoder needs the stream's quality")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn((1, net.noise_channels, *x_mse.shape[2:]), generator=gen).to(x_mse.device)
    r = torch.full((1,), float(realism), device=x_mse.device)
    rate = None if quality is None else torch.full((1,), rate_level(quality), device=x_mse.device)
    with torch.no_grad():
        return tiled(lambda xi, ni: net(xi, ni, r, rate), x_mse, noise)


def on_rgb(array: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply an RGB -> RGB ``fn`` to (H, W, 1|3) uint8; gray goes through replicated RGB and back."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 3:
        return fn(array)
    if array.shape[2] != 1:
        raise CodecError(f"generative: decoders take 1 or 3 bands, got {array.shape[2]}")
    out = fn(np.repeat(array, 3, axis=2))
    return ((out.astype(np.uint16).sum(axis=2) + 1) // 3).astype(np.uint8)[:, :, None]
