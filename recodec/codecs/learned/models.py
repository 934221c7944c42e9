"""Torch models of the learned codecs: factorized prior and (mean-)scale hyperprior.

These float modules are what training optimises and what the encoder's analysis
transforms run.  Decoding never runs them: :mod:`recodec.codecs.learned.integer`
turns the synthesis side (``g_s``, ``h_s``) into exact integer networks at export
time, so decoded pixels are bit-identical on every machine.

Both models are *variable rate*: one set of transforms serves every rate point
through per-quality channel gains on the latent (Cui et al. 2021, "Asymmetric
gained deep image compression with continuous rate adaptation"), which lets a
single CPU training run produce the whole quality ladder.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Lower bound of the Gaussian scale (as in CompressAI); the integer table starts just below it.
SCALE_MIN = 0.11
SCALE_MAX = 256.0
#: The integer scale table spaces scales exp(1/SCALE_STEPS_PER_NAT) apart.
SCALE_STEPS_PER_NAT = 8
#: Likelihoods are floored so that log2 never sees zero during training.
LIKELIHOOD_MIN = 1e-9


def run_fp32_tail(seq: nn.Sequential, x: Tensor) -> Tensor:
    """``seq(x)``, but with its last layer in float32 when mixed-precision autocast is on.

    Why: under bf16 training autocast, the latents, hyper-latents and the Gaussian means
    must keep float32 precision (bf16 would round y to 1/4 near 50, far coarser than what
    the rate model and the integer decoder see); those last layers are a small share of
    the FLOPs, so this costs little speed.
    """
    if not torch.is_autocast_enabled(x.device.type):
        return seq(x)
    h = seq[:-1](x)
    with torch.autocast(x.device.type, enabled=False):
        return seq[-1](h.float())


def conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    """A 'same'-padded strided convolution (downsamples by ``stride``)."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    """A transposed convolution that upsamples exactly by ``stride``."""
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              output_padding=stride - 1)


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé et al. 2016); ``inverse=True`` gives IGDN.

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (GDN) or ``x_i * sqrt(...)`` (IGDN).
    beta and gamma are kept non-negative by squaring their raw parameters.
    """

    def __init__(self, channels: int, inverse: bool = False, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_raw = nn.Parameter(torch.ones(channels))
        # Off-diagonals start small but non-zero: d(g^2)/dg = 0 at g = 0 would freeze them.
        eye = torch.eye(channels)
        self.gamma_raw = nn.Parameter(math.sqrt(gamma_init) * eye + 0.01 * (1 - eye))

    @property
    def beta(self) -> Tensor:
        """Effective (positive) beta."""
        return self.beta_raw**2 + 1e-6

    @property
    def gamma(self) -> Tensor:
        """Effective (non-negative) gamma, shape (C, C)."""
        return self.gamma_raw**2

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        norm = F.conv2d(x * x, self.gamma.view(c, c, 1, 1), self.beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class FactorizedDensity(nn.Module):
    """Non-parametric per-channel density (Ballé et al. 2018, appendix 6.1).

    The cumulative is ``c = f_K o ... o f_1`` with ``f_k(x) = g_k(H_k x + b_k)`` and
    ``g_k(x) = x + a_k * tanh(x)``; the likelihood of an integer bin is
    ``sigmoid(c(x + 1/2)) - sigmoid(c(x - 1/2))``.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: Tensor, channels: slice = slice(None)) -> Tensor:
        """Logit of the cumulative at ``x`` of shape (C, 1, n) for the selected channels."""
        # Likelihoods stay float32 under bf16 autocast: bin masses are differences of sigmoids.
        with torch.autocast(x.device.type, enabled=False):
            x = x.float() if x.dtype == torch.bfloat16 else x
            for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
                x = torch.matmul(F.softplus(m[channels]), x) + b[channels]
                if i < len(self.factors):
                    x = x + torch.tanh(self.factors[i][channels]) * torch.tanh(x)
        return x

    def bin_probability(self, x: Tensor, channels: slice = slice(None)) -> Tensor:
        """Probability mass of the unit bin centred on each value of ``x`` (C, 1, n)."""
        lower = self.logits_cdf(x - 0.5, channels)
        upper = self.logits_cdf(x + 0.5, channels)
        # Evaluate on the side of the median where sigmoids do not saturate.
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def forward(self, x: Tensor, channel_offset: int = 0) -> Tensor:
        """Likelihood of (B, C', H, W) values using channels ``offset .. offset+C'``."""
        b, c, h, w = x.shape
        v = x.transpose(0, 1).reshape(c, 1, -1)
        p = self.bin_probability(v, slice(channel_offset, channel_offset + c))
        return p.reshape(c, b, h, w).transpose(0, 1).clamp_min(LIKELIHOOD_MIN)


def gaussian_bin_probability(residual: Tensor, scale: Tensor) -> Tensor:
    """Mass of N(0, scale) on the unit bin centred on ``residual`` (symmetrised for stability)."""
    v = torch.abs(residual)
    inv = 1.0 / (scale * math.sqrt(2.0))
    upper = 0.5 * torch.erfc(-(0.5 - v) * inv)
    lower = 0.5 * torch.erfc(-(-0.5 - v) * inv)
    return (upper - lower).clamp_min(LIKELIHOOD_MIN)


def quantize(x: Tensor, training: bool, offset: Tensor | None = None, ste: bool = True) -> tuple[Tensor, Tensor]:
    """(value for the rate model, value for the decoder) of ``x`` quantised around ``offset``.

    Training uses additive uniform noise for the rate term.  The decoder gets the noisy value
    too while ``ste`` is False (early training: with rounding, small latents all become 0 and
    the decoder sees nothing), then straight-through rounding, which matches inference
    ("mixed" quantisation, Minnen & Singh 2020).
    """
    base = x if offset is None else x - offset
    noisy = base + torch.empty_like(base).uniform_(-0.5, 0.5) if training else torch.round(base)
    decoded = base + (torch.round(base) - base).detach() if ste or not training else noisy
    if offset is not None:
        return noisy, decoded + offset
    return noisy, decoded


class FactorizedPrior(nn.Module):
    """Factorized-prior model of Ballé, Laparra, Simoncelli (2017), "End-to-end optimized image compression".

    Dataflow::

        x -> g_a -> y -> * gain[q] -> Q -> y_hat -> * inv_gain[q] -> g_s -> x_hat
                                           |
                                           +-- p(y_hat) = prod_c density_c  (fixed per-channel tables)

    ``g_a`` is 4 strided 5x5 convolutions with GDN, ``g_s`` mirrors it with IGDN; the
    prior is the non-parametric :class:`FactorizedDensity`, one per (quality, channel).
    """

    def __init__(self, n: int = 128, m: int = 192, qualities: int = 6) -> None:
        super().__init__()
        self.n, self.m, self.qualities = n, m, qualities
        self.g_a = nn.Sequential(
            conv(3, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, m),
        )
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, 3),
        )
        # Higher quality -> larger gain -> finer effective quantisation step.
        steps = torch.arange(qualities, dtype=torch.float32) - (qualities - 1) / 2
        log_gain = (0.5 * math.log(2.0) * steps).unsqueeze(1).repeat(1, m)
        self.log_gain = nn.Parameter(log_gain)
        self.log_inv_gain = nn.Parameter(-log_gain.clone())
        self.density_y = FactorizedDensity(m * qualities)
        #: Straight-through rounding for the decoder input during training (else noise).
        self.ste = True

    def gain(self, q: int) -> Tensor:
        """Per-channel encoder gain of quality index ``q`` (0-based), shape (1, M, 1, 1)."""
        return torch.exp(self.log_gain[q]).view(1, -1, 1, 1)

    def inv_gain(self, q: int) -> Tensor:
        """Per-channel decoder gain of quality index ``q`` (0-based), shape (1, M, 1, 1)."""
        return torch.exp(self.log_inv_gain[q]).view(1, -1, 1, 1)

    def analysis(self, x: Tensor, q: int) -> Tensor:
        """Gained latent ``y * gain[q]`` of images ``x`` in [0, 1]."""
        return run_fp32_tail(self.g_a, x) * self.gain(q)

    def factorized_likelihood(self, y_noisy: Tensor, q: int) -> Tensor:
        """Likelihood of gained latents under the quality-``q`` factorized prior."""
        return self.density_y(y_noisy, channel_offset=q * self.m)

    def forward(self, x: Tensor, q: int) -> dict[str, Tensor]:
        """Training pass: reconstruction and likelihoods."""
        y = self.analysis(x, q)
        y_noisy, y_hat = quantize(y, self.training, ste=self.ste)
        x_hat = self.g_s(y_hat * self.inv_gain(q)).float()
        return {"x_hat": x_hat, "likelihoods": [self.factorized_likelihood(y_noisy, q)]}


class ScaleHyperprior(FactorizedPrior):
    """Mean-scale hyperprior model of Ballé, Minnen, Singh, Hwang, Johnston (2018),
    "Variational image compression with a scale hyperprior" (mean extension: Minnen et al. 2018).

    Dataflow::

        x -> g_a -> y (*gain[q]) -> h_a -> z -> Q -> z_hat -> h_s -> (sigma, mu)
                    |                          |                       |
                    |                 p(z_hat): factorized tables      v
                    +-> Q(y - mu) -> r_hat ~ N(0, sigma) -> y_hat = r_hat + mu
                                                             -> * inv_gain[q] -> g_s -> x_hat

    ``h_s`` is run as an exact integer network at coding time and its sigma output is an
    integer index into a fixed table of quantised Gaussian CDFs.  The factorized prior of the
    parent class is trained alongside (on detached latents) so that the same weights also
    serve :class:`FactorizedPrior` coding.
    """

    def __init__(self, n: int = 128, m: int = 192, qualities: int = 6) -> None:
        super().__init__(n, m, qualities)
        self.h_a = nn.Sequential(
            conv(m, n, 3, 1), nn.ReLU(), conv(n, n), nn.ReLU(), conv(n, n),
        )
        self.h_s = nn.Sequential(
            deconv(n, n), nn.ReLU(), deconv(n, n), nn.ReLU(), conv(n, 2 * m, 3, 1),
        )
        self.density_z = FactorizedDensity(n)

    def hyper_params(self, z_hat: Tensor) -> tuple[Tensor, Tensor]:
        """(sigma, mu) of the conditional Gaussian from the quantised hyper-latent."""
        out = run_fp32_tail(self.h_s, z_hat)
        log_scale, mu = out.chunk(2, dim=1)
        scale = torch.exp(log_scale.clamp(math.log(SCALE_MIN), math.log(SCALE_MAX)))
        return scale, mu

    def forward(self, x: Tensor, q: int) -> dict[str, Tensor]:
        """Training pass: reconstruction, likelihoods of y and z, and the factorized side rate."""
        y = self.analysis(x, q)
        z = run_fp32_tail(self.h_a, y)
        z_noisy, z_hat = quantize(z, self.training, ste=self.ste)
        scale, mu = self.hyper_params(z_hat)
        r_noisy, y_hat = quantize(y, self.training, offset=mu, ste=self.ste)
        x_hat = self.g_s(y_hat * self.inv_gain(q)).float()
        # The factorized prior learns on detached latents: it must not steer the transforms.
        y_det = y.detach()
        y_fact = y_det + torch.empty_like(y_det).uniform_(-0.5, 0.5)
        return {
            "x_hat": x_hat,
            "likelihoods": [gaussian_bin_probability(r_noisy, scale), self.density_z(z_noisy)],
            "aux_likelihoods": [self.factorized_likelihood(y_fact, q)],
        }


MODELS: dict[str, type[FactorizedPrior]] = {"factorized": FactorizedPrior, "hyperprior": ScaleHyperprior}


def build_model(kind: str, n: int, m: int, qualities: int) -> FactorizedPrior:
    """Instantiate ``"factorized"`` or ``"hyperprior"``."""
    try:
        return MODELS[kind](n=n, m=m, qualities=qualities)
    except KeyError:
        raise ValueError(f"unknown model {kind!r}; known: {', '.join(MODELS)}") from None
