"""Encoding is optimisation: fit one image's latents and networks, then quantise and choose.

Phases (Ladune et al. 2023; Kim et al. 2024): Adam on ``lmbda * 255**2 * MSE + bpp``, first (our
addition, for short CPU budgets) at 1/4 and 1/2 of the resolution without the finest latent grids,
then at full resolution with additive uniform noise as the quantisation proxy, then straight-through rounding with a
decaying learning rate; finally every network layer is quantised at its own weight precision
(bits), chosen to minimise the same loss measured on the exact decoder (rate of the parameters
included), which is what the stream then holds.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recodec.codecs.overfit import latents as L
from recodec.codecs.overfit.bitstream import layer_bits, write_params
from recodec.codecs.overfit.exact import (OUT_FRAC, ExactArm, QLayer, QNet, features, float_layers, input_fracs,
                                          quantize_layer, split_layers, synthesize)
from recodec.codecs.overfit.network import Arch, OverfitModel, contexts, laplace_bits
from recodec.codecs.overfit.tables import LATENT_MAX


@dataclass(frozen=True)
class Preset:
    """Network sizes and optimisation length of one preset."""

    iterations: int
    hidden: tuple[int, ...]
    convs: int
    arm_hidden: int
    levels: int = 7
    lr: float = 0.03
    #: Learning rate of the networks (the latents use ``lr``).
    lr_net: float = 3e-3
    #: Fraction of the iterations with the noise proxy (the rest is straight-through).
    noise_fraction: float = 0.7
    #: Fraction of the iterations a warm-started encode (target search) runs.
    warm_fraction: float = 0.4
    bits: tuple[int, ...] = (6, 7, 8, 9, 10)
    #: Coarse-to-fine start, coarsest first: (s, share) spends ``share`` of the step budget still left
    #: at 1/2**s of the resolution (noise proxy; :func:`coarse_step_cost` steps per full one); cold encodes only.
    coarse: tuple[tuple[int, float], ...] = ()

    def arch(self, bands: int, height: int, width: int) -> Arch:
        """The networks of this preset for an image: at most one latent level per halving of its side."""
        levels = max(1, min(self.levels, int(np.log2(max(height, width))) + 1))
        return Arch(levels, self.hidden, self.convs, self.arm_hidden, bands)


#: Above this lambda the latents' learning rate grows as sqrt(lmbda / GAIN_KNEE), up to GAIN_CAP.
GAIN_KNEE = 0.05
#: Largest latent learning-rate multiplier: uncapped, the high-lambda fits overshoot (16-bit training
#: scenes, ``benchmarks/overfitted_schedule.py --study gain``: RD loss against a cap of 2, uncapped
#: -5.8 % on average but +13.8 % on one fit, a cap of 4 -12.2 % and at worst +0.9 %).
GAIN_CAP = 4.0


#: glibc ``mallopt`` parameters: the size above which blocks are mmap-ed, and the free heap top kept.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Freed heap memory kept for reuse instead of returned to the system (bytes).
KEEP_FREED = 512 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc keep freed blocks up to 32 MiB (and a 512 MiB heap top) for reuse; once per process.

    Every optimisation step allocates the same tens-of-MB activations; by default glibc maps them
    fresh and returns them after the step, so each step first-touches them again (about 10,000
    page faults per 768x512 step, 10-15 % of its time, measured on the AVX2 machine).  False where
    there is no glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, KEEP_FREED))
    except (OSError, AttributeError):
        return False


#: Images with fewer pixels are optimised on one thread.
SMALL_IMAGE = 128 * 128


#: A step's fixed cost (dispatch over every level and layer), in pixels' worth of per-pixel work.
STEP_OVERHEAD_PIXELS = 8000


def coarse_step_cost(skip: int, pixels: int) -> float:
    """Time of a step at 1/2**skip (skip >= 1) of the resolution, relative to a full one, for ``pixels`` pixels.

    ``benchmarks/overfitted_step.py``: about 1/4 and 1/8 at 384x512, 1/4-1/5 and 1/8-1/13 at
    768x512.  Small images are bound by the fixed cost instead (``--size 37 53``, ``--size 128 128``):
    a step at 1/4 took 0.55-0.70 and 0.37-0.52 of a full one there, so the floor keeps their coarse stage from running several
    times the steps (and the time) that its share of the budget allows.
    """
    return max(2.0 ** -(skip + 1), STEP_OVERHEAD_PIXELS / (STEP_OVERHEAD_PIXELS + pixels))


PRESETS: dict[str, Preset] = {
    # 800 full-resolution steps' worth of time (the bar: 3 minutes for 768x512 on this CPU), half of
    # it at 1/4 and 1/2 resolution; rates 0.05 / 0.01 (latents / networks): docs/overfitted.md.
    "fast": Preset(iterations=800, hidden=(16,), convs=2, arm_hidden=12, lr=0.05, lr_net=0.01,
                   coarse=((2, 0.2), (1, 0.3))),
    "balanced": Preset(iterations=2000, hidden=(24,), convs=2, arm_hidden=16),
    "archival": Preset(iterations=12000, hidden=(40,), convs=2, arm_hidden=24, lr=2e-2, lr_net=2e-3),
}


@dataclass
class Problem:
    """One image to fit: normalised bands, validity mask and the loss weights."""

    x: torch.Tensor          # (1, S, H, W) float32, peak-normalised to [0, 1] over [low, low + span]
    valid: torch.Tensor      # (1, 1, H, W) float32 1/0
    weight: float            # (span / peak)**2: MSE on the documented peak
    lmbda: float
    pixels: int              # H * W: bpp counts every pixel
    bf16: bool = False       # bfloat16 autocast on the CPU (8-bit data only: bf16 caps PSNR near 50 dB)


@dataclass
class Fitted:
    """The chosen stream content."""

    net: QNet
    latents: list[np.ndarray]
    params: bytes
    state: dict[str, Any]    # float state for warm starts


def distortion(rec: torch.Tensor, p: Problem) -> torch.Tensor:
    """MSE over valid pixels and every band, on the documented peak."""
    err = (rec - p.x) ** 2 * p.valid
    return err.sum() / (p.valid.sum() * p.x.shape[1]).clamp_min(1) * p.weight


def latent_gain(lmbda: float) -> float:
    """Latent learning-rate multiplier: high-fidelity targets need large latents within few steps.

    Adam moves a latent by about ``lr`` per step, so 400 steps at 0.03 cannot reach the latent
    magnitudes (hundreds) that 45+ dB on 16-bit data needs; photo-range lambdas keep 1.  Capped
    at :data:`GAIN_CAP`: larger steps made the highest-lambda fits unstable.
    """
    return min(GAIN_CAP, max(1.0, math.sqrt(lmbda / GAIN_KNEE)))


def coarse_problem(p: Problem, skip: int) -> Problem:
    """``p`` averaged over 2**skip-pixel blocks (ceil sizes, as the latent grids); valid fractions weight the MSE."""
    k = 2**skip
    share = F.avg_pool2d(p.valid, k, ceil_mode=True)
    x = F.avg_pool2d(p.x * p.valid, k, ceil_mode=True) / share.clamp_min(1e-12)
    return replace(p, x=x, valid=share)


def _train(model: OverfitModel, p: Problem, preset: Preset, iterations: int, device: str, cold: bool) -> None:
    """Coarse-to-fine start (cold encodes), then the noise phase and the straight-through phase, cosine-decayed Adam.

    Starting at reduced resolution (several cheap steps per full one) sets up the coarse latents,
    the networks and the context model before the finest grid joins.  On six training crops it cut
    the RD loss of an 800-step fit by a quarter, in about 17 % more time, and it keeps the finest
    grid from filling with +-1 values at low rates (docs/overfitted.md).
    """
    gen = torch.Generator(device=device).manual_seed(0)
    nets = [*model.synthesis.parameters(), *model.arm.parameters()]
    lr = preset.lr * latent_gain(p.lmbda)
    opt = torch.optim.Adam([{"params": list(model.latents.parameters()), "lr": lr, "base": lr},
                            {"params": nets, "lr": preset.lr_net, "base": preset.lr_net}])
    for skip, share in preset.coarse if cold else ():
        if skip < model.arch.levels:
            sub = coarse_problem(p, skip)
            for _ in range(int(share * iterations / coarse_step_cost(skip, p.pixels))):
                _step(model, opt, sub, "noise", gen, skip)
            iterations -= int(share * iterations)
    noise_steps = int(iterations * preset.noise_fraction)
    for it in range(iterations):
        frac = it / max(iterations, 1)
        for group in opt.param_groups:
            group["lr"] = group["base"] * (0.5 + 0.5 * math.cos(math.pi * frac)) if it >= noise_steps else group["base"]
        _step(model, opt, p, "noise" if it < noise_steps else "ste", gen, 0)


#: Side of the corner patch of the next grid that :func:`_prime_bits` prices.
PRIME_SIDE = 64
#: Whether the patch's bits count as the whole grid's (scaled by the grid's size over the patch's).
PRIME_AS_GRID = True


def _prime_bits(model: OverfitModel, level: int, gen: torch.Generator) -> torch.Tensor:
    """Bits the context model gives grid ``level`` (not yet in the fit: zeros) under the noise proxy.

    Counted while the fit runs at a coarser resolution, so that the context model already prices
    the next grid's zeros when it joins.  Without it the shared context model first priced them
    like the busy coarse grids (1-2 bits each), moving them was then nearly free, and one
    768x512 photo's finest grid filled with +-1 values (1.4 bpp instead of 0.2 at the same PSNR).
    A 64x64 corner patch stands for the grid, its bits scaled to the grid's size: counted once
    (session 20) the patch was too weak a lesson, and a float32 fit of a training crop still
    collapsed (0.93 bpp against 0.19); ``benchmarks/overfitted_schedule.py --study priming``.
    """
    grid = model.latents[level].detach()
    patch = grid[..., :PRIME_SIDE, :PRIME_SIDE]
    u = patch + torch.rand(patch.shape, generator=gen, device=gen.device) - 0.5
    bits = laplace_bits(u.reshape(-1), *model.arm(contexts(u))).sum()
    return bits * (grid.numel() / patch.numel()) if PRIME_AS_GRID else bits


def _step(model: OverfitModel, opt: torch.optim.Optimizer, p: Problem, mode: str, gen: torch.Generator,
          skip: int) -> None:
    """One Adam step on ``lmbda * 255**2 * MSE + bpp`` (bpp over the full image's pixels).

    Coarse steps (``skip > 0``) also count :func:`_prime_bits` of the grid that joins next.
    """
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=p.x.device.type == "cpu" and p.bf16):
        rec, bits = model(mode, gen, skip)
        if skip:
            bits = bits + _prime_bits(model, skip - 1, gen)
    loss = p.lmbda * 255**2 * distortion(rec.float(), p) + bits.float() / p.pixels
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def fit(p: Problem, preset: Preset, arch: Arch, *, iterations: int, device: str,
        warm: dict[str, Any] | None = None) -> Fitted:
    """Optimise, then quantise each layer at the precision that keeps the exact loss smallest."""
    h, w = p.x.shape[2:]
    with torch.random.fork_rng(devices=[]):  # a fixed initialisation without touching the caller's RNG
        torch.manual_seed(0)
        model = OverfitModel(arch, h, w)
    if warm is not None:
        model.load_state_dict(warm)
        iterations = max(1, int(iterations * preset.warm_fraction))
    else:
        with torch.no_grad():  # start from the mean colour: the first steps then shape, not shift
            mean = (p.x * p.valid).sum(dim=(0, 2, 3)) / p.valid.sum().clamp_min(1)
            model.synthesis.mlp[-1].bias.copy_(mean)
    model = model.to(device)
    keep_freed_memory()
    threads = torch.get_num_threads()
    if h * w < SMALL_IMAGE:
        torch.set_num_threads(1)  # thread hand-offs cost more than a small image's arithmetic
    try:
        _train(model, replace(p, x=p.x.to(device), valid=p.valid.to(device)), preset, iterations, device,
               cold=warm is None)
        return _choose(model.cpu().eval(), p, preset)
    finally:
        torch.set_num_threads(threads)


#: Weight precisions (bits) one layer may take in :func:`_choose`'s per-layer search.
LAYER_BITS = range(4, 13)


def _descend(cost: Callable[[list[int]], float], layers: int, start: Sequence[int]) -> list[int]:
    """Per-layer precisions lowering ``cost``: the best of ``start`` for every layer, then, layer by
    layer, steps of one bit down (or else up) while each lowers the cost (a line search per layer)."""
    best_cost, best = min((cost([b] * layers), [b] * layers) for b in start)
    for i in range(layers):
        for step in (-1, 1):
            moved = False
            while best[i] + step in LAYER_BITS:
                trial = best[:i] + [best[i] + step] + best[i + 1:]
                if (c := cost(trial)) >= best_cost:
                    break
                best_cost, best, moved = c, trial, True
            if moved:
                break  # no way back: the other direction starts from a worse point
    return best


def _choose(model: OverfitModel, p: Problem, preset: Preset) -> Fitted:
    """Quantise every network layer at its own precision, keeping the smallest exact loss.

    The exact loss splits: the synthesis layers set the distortion, the context model's layers the
    latents' rate, and every layer its own parameter bits, so each group is searched alone
    (:func:`_descend`) on the exact decoder's arithmetic, and the parameter bits count.
    """
    h, w = p.x.shape[2:]
    arch = model.arch
    plan = L.make_plan(h, w, arch.levels)
    lat = [torch.round(y.detach().clamp(-LATENT_MAX, LATENT_MAX)).double().cpu() for y in model.latents]
    ints = [y[0, 0].numpy().astype(np.int64) for y in lat]
    upsampled = features(lat)  # the latents are fixed: upsample once for every trial
    pairs = L.coded(plan, L.fill(plan, ints))  # the latents are fixed: only the context model changes
    mods, fins = float_layers(model), input_fracs(arch)
    n_synth = len(arch.hidden) + 1 + arch.convs
    cpu = replace(p, x=p.x.cpu(), valid=p.valid.cpu())

    def quantized(first: int, bits: list[int]) -> list[QLayer]:
        return [quantize_layer(m.weight, m.bias, f, b) for m, f, b in zip(mods[first:], fins[first:], bits)]

    def synthesis_cost(bits: list[int]) -> float:
        layers = quantized(0, bits)
        rec = synthesize(split_layers(arch, layers), upsampled) * 2.0**-OUT_FRAC  # no context model needed
        d = float(distortion(rec[None].float(), cpu))
        return p.lmbda * 255**2 * d + sum(map(layer_bits, layers)) / p.pixels

    def arm_cost(bits: list[int]) -> float:
        layers = quantized(n_synth, bits)
        arm = ExactArm(QNet(arch, [], [], layers))
        return (L.code_length(arm, pairs) + sum(map(layer_bits, layers))) / p.pixels

    with torch.no_grad():
        bits = _descend(synthesis_cost, n_synth, preset.bits) + _descend(arm_cost, len(mods) - n_synth, preset.bits)
        net = split_layers(arch, quantized(0, bits))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return Fitted(net, ints, write_params(net), state)
