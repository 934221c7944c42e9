"""Exact integer networks for everything the decoder computes (Ballé, Johnston, Minnen 2019).

Why: float convolutions give different low bits with thread count, CPU instruction set
or GPU, and the decoder's entropy parameters and pixels must be identical everywhere.

How: weights, biases and activations are fixed-point integers (per-output-channel weight
scales, per-tensor activation scales, all powers of two).  Every convolution runs on
float64 tensors that hold integers, and the export step *checks* (:func:`check_bounds`)
that every product and every partial sum of every convolution is an integer of magnitude
below 2**52.  Float64 addition of such integers is exact, so the result is the same for
any summation order: any thread count, any BLAS, any CPU, and CUDA with cuDNN disabled.
Between convolutions only exact operations are used: multiplication by powers of two,
``floor``, clamping, integer products below 2**52, and an integer square root
(:func:`isqrt`) that corrects the float ``sqrt`` guess with exact integer comparisons.
No ``exp``/``log``/``erf`` (whose results differ between math libraries) runs at decode time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

#: Activations are signed integers with |a| <= 2**(ACT_BITS-1) - 1.
ACT_BITS = 18
#: Weights are signed integers with |w| <= 2**(WEIGHT_BITS-1) - 1.
WEIGHT_BITS = 12
#: IGDN squares a reduced-precision copy of its input with |x| <= 2**NORM_INPUT_BITS.
NORM_INPUT_BITS = 12
#: Largest magnitude any exact intermediate may reach (float64 integers are exact to 2**53).
EXACT_LIMIT = 2**52
#: Fractional bits of the fixed-point mean of the mean-scale hyperprior.
MEAN_FRAC = 8

ACT_MAX = 2 ** (ACT_BITS - 1) - 1


def rint(x: Tensor) -> Tensor:
    """Round half up, exactly (floor(x + 1/2) is exact for |x| < 2**52)."""
    return torch.floor(x + 0.5)


_POW2_RANGE = 256
#: 2**k for |k| <= 256 built with math.ldexp, which only sets the exponent: exact everywhere
#: (a library pow/exp2 need not be).
_POW2 = torch.tensor([math.ldexp(1.0, k) for k in range(-_POW2_RANGE, _POW2_RANGE + 1)], dtype=torch.float64)


def pow2(exponent: Tensor | int, like: Tensor) -> Tensor:
    """Exact 2**exponent (integer exponent, scalar or tensor) as float64 on ``like``'s device."""
    e = torch.as_tensor(exponent, device=like.device).to(torch.int64)
    return _POW2.to(like.device)[e + _POW2_RANGE]


def isqrt(n: Tensor) -> Tensor:
    """floor(sqrt(n)) of non-negative float64 integers below 2**52, exactly.

    The float square root is only a guess; the two integer comparisons fix it even where a
    platform's sqrt were off by an ulp, so the result depends on nothing but ``n``.
    """
    r = torch.floor(torch.sqrt(n))
    r = r - (r * r > n).to(n.dtype)
    r = r + ((r + 1) * (r + 1) <= n).to(n.dtype)
    return r


def _exact_conv(x: Tensor, w: Tensor, stride: int, transposed: bool) -> Tensor:
    """Convolution of integer-valued float64 tensors (exact under the checked bounds)."""
    pad = w.shape[-1] // 2
    # cuDNN may pick FFT/Winograd algorithms, which are not sums of exact products.
    with torch.backends.cudnn.flags(enabled=False):
        if transposed:
            return F.conv_transpose2d(x, w, stride=stride, padding=pad, output_padding=stride - 1)
        return F.conv2d(x, w, stride=stride, padding=pad)


@dataclass
class IntConv:
    """A fixed-point (transposed) convolution followed by requantisation (and optional ReLU)."""

    weight: Tensor   # integer-valued float64; (Cout, Cin, k, k) or (Cin, Cout, k, k) if transposed
    bias: Tensor     # integer-valued float64, scaled by 2**(wfrac + afrac_in), shape (Cout,)
    wfrac: Tensor    # per-output-channel weight fractional bits, shape (Cout,)
    afrac_in: int
    afrac_out: int
    stride: int
    transposed: bool
    relu: bool

    def accumulate(self, x: Tensor) -> Tensor:
        """Exact integer accumulator (fractional bits ``wfrac + afrac_in`` per channel)."""
        return _exact_conv(x, self.weight, self.stride, self.transposed) + self.bias.view(1, -1, 1, 1)

    def __call__(self, x: Tensor) -> Tensor:
        acc = self.accumulate(x)
        shift = pow2(self.afrac_out - self.afrac_in - self.wfrac, acc).view(1, -1, 1, 1)
        out = rint(acc * shift)
        return out.clamp(0 if self.relu else -ACT_MAX, ACT_MAX)


@dataclass
class IntIGDN:
    """Inverse GDN ``x * sqrt(beta + gamma @ x^2)`` in fixed point with an exact integer sqrt."""

    gamma: Tensor    # integer-valued float64 (C, C, 1, 1), fractional bits gfrac
    beta: Tensor     # integer-valued float64 (C,), fractional bits gfrac + 2 * sfrac
    gfrac: int
    sfrac: int       # fractional bits of the reduced input that gets squared
    afrac_in: int
    afrac_out: int

    def __call__(self, x: Tensor) -> Tensor:
        xs = torch.floor(x * pow2(self.sfrac - self.afrac_in, x))
        norm = F.conv2d(xs * xs, self.gamma) + self.beta.view(1, -1, 1, 1)
        nfrac = self.gfrac + 2 * self.sfrac  # even by construction, so sqrt halves it exactly
        root = isqrt(norm)
        out = rint(x * root * pow2(self.afrac_out - self.afrac_in - nfrac // 2, x))
        return out.clamp(-ACT_MAX, ACT_MAX)


def quantize_weight(w: Tensor, out_dim: int) -> tuple[Tensor, Tensor]:
    """Integer weights and per-output-channel fractional bits (largest |w| fits WEIGHT_BITS)."""
    w = w.detach().double()
    dims = [d for d in range(w.dim()) if d != out_dim]
    peak = w.abs().amax(dim=dims)
    frac = torch.floor(torch.log2((2 ** (WEIGHT_BITS - 1) - 1) / peak.clamp_min(1e-12))).clamp(-8, 40)
    # An all-zero channel (a freshly widened latent, recodec.tasks.widen) takes the layer's
    # coarsest step: at 2^40 its bias alone would break the 2**52 bound.
    zero = peak == 0
    if bool(zero.any()):
        frac[zero] = frac[~zero].min() if bool((~zero).any()) else 0.0
    shape = [1] * w.dim()
    shape[out_dim] = -1
    wq = torch.round(w * torch.exp2(frac).view(shape))
    return wq, frac


def act_frac(peak: float, margin: float = 4.0) -> int:
    """Activation fractional bits so that ``margin * peak`` still fits ACT_BITS."""
    peak = max(float(peak), 1e-6)
    return int(max(-8, min(40, math.floor(math.log2(ACT_MAX / (margin * peak))))))


def make_conv(weight: Tensor, bias: Tensor, *, afrac_in: int, afrac_out: int, stride: int,
              transposed: bool, relu: bool) -> IntConv:
    """Quantise a float (transposed) convolution into an :class:`IntConv`."""
    wq, wfrac = quantize_weight(weight, 1 if transposed else 0)
    bq = torch.round(bias.detach().double() * torch.exp2(wfrac + afrac_in))
    return IntConv(wq, bq, wfrac, afrac_in, afrac_out, stride, transposed, relu)


def make_igdn(gamma: Tensor, beta: Tensor, *, afrac_in: int, afrac_out: int) -> IntIGDN:
    """Quantise an IGDN layer (effective gamma (C, C) and beta (C,))."""
    c = gamma.shape[0]
    sfrac = afrac_in - (ACT_BITS - 1 - NORM_INPUT_BITS)
    g = gamma.detach().double()
    gfrac = math.floor(math.log2((2**NORM_INPUT_BITS - 1) / max(float(g.max()), 1e-12)))
    if (gfrac + 2 * sfrac) % 2:
        gfrac -= 1
    gq = torch.round(g * 2.0**gfrac).view(c, c, 1, 1)
    bq = torch.round(beta.detach().double() * 2.0 ** (gfrac + 2 * sfrac))
    return IntIGDN(gq, bq, gfrac, sfrac, afrac_in, afrac_out)


def check_bounds(layers: list[IntConv | IntIGDN], in_max: float = ACT_MAX, final_gain: float = 1.0) -> None:
    """Raise ValueError unless every intermediate of ``layers`` stays below 2**52 (the proof).

    ``final_gain`` is an integer the last accumulator is multiplied by (255 for pixels).
    Element-wise steps need no bound: a single IEEE-754 operation is correctly rounded, hence
    the same everywhere; only sums, whose order varies, must be exact.
    """
    amax = float(in_max)
    for i, layer in enumerate(layers):
        if isinstance(layer, IntConv):
            w = layer.weight.abs()
            per_out = w.sum(dim=(0, 2, 3)) if layer.transposed else w.sum(dim=(1, 2, 3))
            # Worst case partial sum: every input at its bound with the sign of its weight.
            worst = float((per_out * amax + layer.bias.abs()).max())
        else:
            xs = 2.0**NORM_INPUT_BITS
            worst = float((layer.gamma.sum(dim=(1, 2, 3)) * xs * xs + layer.beta.abs()).max())
            worst = max(worst, amax * worst**0.5)
        if i == len(layers) - 1:
            worst *= final_gain
        if worst >= EXACT_LIMIT:
            raise ValueError(f"integer layer {i} may reach {worst:.3g} >= 2**52; not provably exact")
        amax = ACT_MAX


def state_of(prefix: str, layer: IntConv | IntIGDN) -> dict[str, Tensor]:
    """Flat tensors describing one integer layer (stored in the weights file)."""
    if isinstance(layer, IntConv):
        return {
            f"{prefix}.weight": layer.weight.to(torch.int16),
            f"{prefix}.bias": layer.bias.to(torch.int64),
            f"{prefix}.wfrac": layer.wfrac.to(torch.int16),
            f"{prefix}.frac": torch.tensor([layer.afrac_in, layer.afrac_out, layer.stride,
                                            int(layer.transposed), int(layer.relu)], dtype=torch.int32),
        }
    return {
        f"{prefix}.gamma": layer.gamma.to(torch.int16),
        f"{prefix}.beta": layer.beta.to(torch.int64),
        f"{prefix}.frac": torch.tensor([layer.gfrac, layer.sfrac, layer.afrac_in, layer.afrac_out],
                                       dtype=torch.int32),
    }


def layer_from_state(prefix: str, state: dict[str, Tensor], device: str = "cpu") -> IntConv | IntIGDN:
    """Inverse of :func:`state_of`."""
    def f64(key: str) -> Tensor:
        return state[f"{prefix}.{key}"].to(device=device, dtype=torch.float64)

    frac = [int(v) for v in state[f"{prefix}.frac"]]
    if f"{prefix}.weight" in state:
        return IntConv(f64("weight"), f64("bias"), f64("wfrac"), frac[0], frac[1], frac[2],
                       bool(frac[3]), bool(frac[4]))
    return IntIGDN(f64("gamma"), f64("beta"), frac[0], frac[1], frac[2], frac[3])


class IntHyperSynthesis:
    """Integer ``h_s``: z_hat -> (scale-table index, fixed-point mean), exactly."""

    def __init__(self, layers: list[IntConv], scale_offset: int, table_size: int) -> None:
        self.layers = layers
        self.scale_offset = scale_offset
        self.table_size = table_size

    def __call__(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """Index (int64) and mean * 2**MEAN_FRAC (int64) for integer ``z_hat`` (1, N, h, w)."""
        from recodec.codecs.learned.models import SCALE_STEPS_PER_NAT

        x = z_hat.to(torch.float64)
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1]
        acc = last.accumulate(x)
        m = acc.shape[1] // 2
        scale_acc, mean_acc = acc[:, :m], acc[:, m:]
        # log-scale * steps/nat, rounded: an exact power-of-two rescale and a floor.
        steps = SCALE_STEPS_PER_NAT.bit_length() - 1
        frac = (last.afrac_in + last.wfrac).view(1, -1, 1, 1)
        index = rint(scale_acc * pow2(steps - frac[:, :m], acc)) - self.scale_offset
        index = index.clamp(0, self.table_size - 1)
        mean = rint(mean_acc * pow2(MEAN_FRAC - frac[:, m:], acc)).clamp(-(2**24), 2**24)
        return index.to(torch.int64).cpu(), mean.to(torch.int64).cpu()


class IntSynthesis:
    """Integer ``g_s``: fixed-point y_hat and quality -> 8-bit pixels, exactly."""

    def __init__(self, inv_gain: Tensor, inv_gain_frac: int, afrac0: int, layers: list[IntConv | IntIGDN]) -> None:
        self.inv_gain = inv_gain          # integer-valued float64 (Q, M)
        self.inv_gain_frac = inv_gain_frac
        self.afrac0 = afrac0
        self.layers = layers

    def __call__(self, y_fixed: Tensor, y_frac: int, q: int) -> Tensor:
        """uint8 (3, H, W) pixels from integer latents with ``y_frac`` fractional bits."""
        x = y_fixed.to(device=self.inv_gain.device, dtype=torch.float64)
        g = self.inv_gain[q].view(1, -1, 1, 1)
        x = rint(x * g * pow2(self.afrac0 - y_frac - self.inv_gain_frac, x)).clamp(-ACT_MAX, ACT_MAX)
        for layer in self.layers[:-1]:
            x = layer(x)
        last = self.layers[-1]
        assert isinstance(last, IntConv)
        acc = last.accumulate(x)
        frac = (last.afrac_in + last.wfrac).view(1, -1, 1, 1)
        pixels = rint(acc * 255.0 * pow2(-frac, acc)).clamp(0, 255)
        return pixels[0].to(torch.uint8).cpu()
