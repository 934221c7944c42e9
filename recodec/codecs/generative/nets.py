"""Torch networks of the generative decoders: one small U-Net family, three uses.

* :class:`Restorer` - a conditional denoiser in the "inversion by direct iteration" form
  (Delbracio & Milanfar 2023, InDI; diffusion-style restoration as in Theis et al. 2022 and
  Yang & Mandt 2023): given the degraded image ``y`` (a JPEG decode, or the hyperprior's MSE
  reconstruction), an interpolate ``x_t = (1-t) x + t y + s t eps`` and ``t``, it predicts
  the clean ``x``.  One step from ``x_1 = y`` is the deterministic posterior-mean view;
  the few-step sampler in :mod:`.sampler` re-noises between steps (seeded).
* :class:`Generator` - the GAN decoder's residual (HiFiC, Mentzer et al. 2020; multi-realism
  with a knob, Agustsson et al. 2023): ``x = x_mse + realism * R(x_mse, noise, realism, rate)``,
  so ``realism = 0`` is exactly the MSE decoder.  ``rate`` is the stream's rate point (the
  hyperprior quality, see :func:`rate_level`): how much texture the stream already carries.
* :class:`PatchDiscriminator` - conditional patch discriminator on ``[x, x_mse]`` (training only).

Dataflow (U-Net body, widths ``w`` and ``2w``)::

    in -> conv3 -> res -> down2 -> res -> res -> up2 -> (+ skip) -> res -> conv3 -> residual
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Noise scale ``s`` of the InDI interpolate, in [0, 1] pixel units.
NOISE_SCALE = 0.05


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a LeakyReLU and a skip connection."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, padding=1)
        self.b = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.1))


class UNet(nn.Module):
    """Two-level U-Net returning a 3-channel residual (zero-initialised output layer)."""

    def __init__(self, cin: int, width: int = 32) -> None:
        super().__init__()
        self.inp = nn.Conv2d(cin, width, 3, padding=1)
        self.enc = ResBlock(width)
        self.down = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)
        self.mid = nn.Sequential(ResBlock(2 * width), ResBlock(2 * width))
        self.up = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.dec = ResBlock(width)
        self.out = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.enc(F.leaky_relu(self.inp(x), 0.1))
        m = self.mid(F.leaky_relu(self.down(h), 0.1))
        return self.out(self.dec(h + self.up(m)))


def _pad_even(x: Tensor) -> tuple[Tensor, int, int]:
    """Replicate-pad to an even size (the U-Net halves once); returns the padding added."""
    ph, pw = x.shape[2] % 2, x.shape[3] % 2
    return (F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x), ph, pw


class Restorer(nn.Module):
    """Conditional denoiser ``F(x_t, y, t) -> x`` (predicts the clean image as ``y + residual``)."""

    kind = "restorer"

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.body = UNet(7, width)

    def forward(self, x_t: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """``x_t``, ``y``: (B, 3, H, W) in [0, 1]; ``t``: (B,) in (0, 1]."""
        tmap = t.view(-1, 1, 1, 1).expand(-1, 1, *y.shape[2:])
        inp, ph, pw = _pad_even(torch.cat([x_t - y, y - 0.5, tmap], 1))
        res = self.body(inp)
        return y + res[:, :, : y.shape[2], : y.shape[3]]


#: Rate points of the hyperprior ladder the rate input spans (qualities 1..RATE_POINTS).
RATE_POINTS = 9


def rate_level(quality: int) -> float:
    """The generator's rate input for a hyperprior quality: 0 at quality 1, 1 at the top of the ladder."""
    return (min(max(int(quality), 1), RATE_POINTS) - 1) / (RATE_POINTS - 1)


class Generator(nn.Module):
    """GAN decoder head: ``x_mse + realism * R([x_mse, noise, realism, rate])``.

    ``rate_input=False`` is the first design (no rate channel), kept so its checkpoints load
    and warm-start a rate-conditioned network (:func:`widen_input`).
    """

    kind = "generator"
    noise_channels = 2

    def __init__(self, width: int = 32, rate_input: bool = True) -> None:
        super().__init__()
        self.width = width
        self.rate_input = rate_input
        self.body = UNet(self.input_channels(rate_input), width)

    @classmethod
    def input_channels(cls, rate_input: bool) -> int:
        """Channels into the U-Net: image, noise, realism and (optionally) rate."""
        return 3 + cls.noise_channels + 1 + int(rate_input)

    def forward(self, x_mse: Tensor, noise: Tensor, realism: Tensor, rate: Tensor | None = None) -> Tensor:
        """``x_mse``: (B, 3, H, W) in [0, 1]; ``noise``: (B, 2, H, W); ``realism``, ``rate``: (B,) in [0, 1]."""
        size = x_mse.shape[2:]
        r = realism.view(-1, 1, 1, 1)
        maps = [x_mse - 0.5, noise, r.expand(-1, 1, *size)]
        if self.rate_input:
            if rate is None:
                raise ValueError("this generator is rate-conditioned: give the stream's rate level")
            maps.append(rate.view(-1, 1, 1, 1).expand(-1, 1, *size))
        inp, ph, pw = _pad_even(torch.cat(maps, 1))
        res = self.body(inp)[:, :, : size[0], : size[1]]
        return x_mse + r * res


def widen_input(state: dict[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
    """``state`` of a network with fewer input channels, zero-padded to ``net``'s first convolution.

    Why: a warm start from the generator without a rate input begins as exactly that network.
    """
    key = "body.inp.weight"
    want = net.state_dict()[key].shape[1]
    have = state[key].shape[1]
    if have < want:
        pad = state[key].new_zeros((state[key].shape[0], want - have, *state[key].shape[2:]))
        state = {**state, key: torch.cat([state[key], pad], 1)}
    return state


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN on ``[x, x_mse]`` (spectral norm); returns logits and features."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.layers = nn.ModuleList([
            sn(nn.Conv2d(6, width, 4, stride=2, padding=1)),
            sn(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)),
            sn(nn.Conv2d(2 * width, 2 * width, 3, padding=1)),
        ])
        self.head = sn(nn.Conv2d(2 * width, 1, 3, padding=1))

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, list[Tensor]]:
        h = torch.cat([x - 0.5, cond - 0.5], 1)
        feats = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        return self.head(h), feats


NETS: dict[str, type[nn.Module]] = {"restorer": Restorer, "generator": Generator}


def build_net(kind: str, width: int, **options: bool) -> nn.Module:
    """Instantiate a decoder network by kind ("restorer" or "generator"); ``options`` go to its class."""
    try:
        cls = NETS[kind]
    except KeyError:
        raise ValueError(f"unknown network {kind!r}; known: {', '.join(NETS)}") from None
    return cls(width=width, **options)
