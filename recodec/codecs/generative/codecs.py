"""Codecs whose decoder is generative: the archive keeps a plain stream, the view is restored.

===========================  =======================  ============================================
codec                        stored stream            decoder
===========================  =======================  ============================================
``jpeg-restore``             plain JPEG (any viewer)  JPEG decode -> :class:`.nets.Restorer`
``hyperprior-diffusion``     the hyperprior's .rclc   integer MSE decode -> :class:`.nets.Restorer`
``hyperprior-gan``           the hyperprior's .rclc   integer MSE decode -> :class:`.nets.Generator`
===========================  =======================  ============================================

None of them writes a new format: the encoder is JPEG's or the hyperprior's, and the stored
bytes decode with the plain codec too (``recodec decode`` shows the plain view unless a
generative decoder is named).  Their decode is *not* bit-exact (float networks; the result
may differ in low bits across machines and thread counts), so they declare
``exact_decode = False`` and ``generative = True``: reconcile re-measures instead of
re-hashing, the manifest's ``decoder`` column names the decoder, seed and weights, and
``--codec auto`` never picks them.  Decode-time settings (``steps``, ``seed``, ``realism``)
are params: recorded in ``codec_params``, applied through :meth:`Codec.decoder_for`.
"""

from __future__ import annotations

import copy
import os
from typing import Any, ClassVar

import numpy as np

from recodec.codecs.base import Capabilities, Codec, Param
from recodec.codecs.generative import decoding as D
from recodec.codecs.generative import texture
from recodec.codecs.jpeg import JpegCodec
from recodec.codecs.learned.codec import HyperpriorCodec, LearnedCodec
from recodec.errors import ConfigError

#: SHA-256 of the hyperprior weights whose MSE decodes the generator and the diffusion decoder were
#: trained on.  Their codecs encode with exactly these (shipped, or kept in ``retired/``), so a new
#: hyperprior release does not feed them decodes they were never calibrated for; fine-tuning them on
#: another release's decodes means changing this pin (training reads it too).
HYPERPRIOR_SHA256 = "de54ef92a24ae9d9dceabebe1a8bdf03decb6b3a1883366ffd1436620c60a563"

STEPS = Param("steps", int, 1, "sampler steps: 1 = deterministic mean view, 2..8 = seeded stochastic sampler",
              tuple(range(1, D.MAX_STEPS + 1)))
SEED = Param("seed", int, 0, "seed of the decoder's noise (recorded; same seed, same device class, same view)")
REALISM = Param("realism", float, 1.0, "0 = the MSE decoder's output, 1 = full realism (invented texture)")


class GenerativeDecoder(Codec):
    """Mixin: decode-time settings, the decoder network, and the label the manifest records."""

    exact_decode = False
    generative = True
    #: ``weights/<weights_name>.pt``.
    weights_name: ClassVar[str]
    #: Registry name of the codec that decodes the stored stream exactly (the plain view).
    plain_codec: ClassVar[str]
    #: The params read at decode time (the rest only steer the encoder).
    decode_params: ClassVar[tuple[str, ...]]
    settings: dict[str, Any] = {}

    def decoder_for(self, params: dict[str, Any]) -> "GenerativeDecoder":
        """A copy of this codec that decodes with ``params``' decode-time settings (validated)."""
        settings = {p.name: params.get(p.name, p.default) for p in self.params if p.name in self.decode_params}
        if not 0.0 <= float(settings.get("realism", 0.0)) <= 1.0:
            raise ConfigError(f"{self.name}: realism must be in [0, 1], got {settings['realism']}")
        other = copy.copy(self)
        other.settings = settings
        return other

    def setting(self, name: str) -> Any:
        """A decode-time setting: the one given to :meth:`decoder_for`, else the param's default."""
        return self.settings.get(name, next(p.default for p in self.params if p.name == name))

    def net(self) -> tuple[Any, str]:
        """(network, weights SHA-256) on this process's device."""
        return D.load_net(self.weights_name, D.pick_device())

    def label(self) -> str:
        """What the manifest's ``decoder`` column records: decoder, settings, weights, device class."""
        _, sha = self.net()
        shown = " ".join(f"{k}={self.setting(k)}" for k in self.decode_params)
        return f"{self.weights_name} {shown} weights={sha[:16]} device={D.pick_device()}"

    def load(self) -> None:
        super().load()
        self.net()  # verify the pin and load the decoder network (CodecError when missing)

    def plain_decode(self, data: bytes) -> np.ndarray:
        """The stored stream's exact (non-generative) decode: the plain codec's."""
        return super()._decode(data)  # type: ignore[safe-super]  # the plain codec is next in the MRO

    def _decode(self, data: bytes) -> np.ndarray:
        quality, hint = self.stream_quality(data), self.stream_hint(data)
        return D.on_rgb(self.plain_decode(data), lambda rgb: self.generate_rgb(rgb, quality=quality, hint=hint))

    def stream_quality(self, data: bytes) -> int | None:
        """The rate point the stored stream was coded at (None: the decoder does not use it)."""
        return None

    def stream_hint(self, data: bytes) -> bytes | None:
        """The stream's texture side information (:mod:`.texture`), if it carries one and the decoder uses it."""
        return None

    def texture_note(self, data: bytes) -> str:
        """What the view's label adds about the texture side information ("" when the decoder has none)."""
        return ""

    def generate_rgb(self, rgb: np.ndarray, *, quality: int | None = None, hint: bytes | None = None) -> np.ndarray:
        """The generative view of a plain (H, W, 3) uint8 decode of a stream coded at ``quality``.

        With ``hint`` (:func:`.texture.encode_hint` of the original), the GAN's texture is scaled
        per block and band to the original's energy at this realism (:func:`.texture.calibrate`).
        """
        net, _ = self.net()
        x = D.to_tensor(rgb, D.pick_device())
        if "realism" not in self.decode_params:
            return D.to_uint8(D.restore(net, x, steps=self.setting("steps"), seed=self.setting("seed")))
        realism = float(self.setting("realism"))
        view = D.generate(net, x, realism=realism, seed=self.setting("seed"), quality=quality)
        if hint is not None:
            view = texture.calibrate(x, view, texture.decode_hint(hint, *rgb.shape[:2]), realism=realism)
        return D.to_uint8(view)

    def resolve_params(self, params: dict[str, Any] | None = None, *, quality: float | None = None) -> dict[str, Any]:
        resolved = super().resolve_params(params, quality=quality)
        self.decoder_for(resolved)  # range checks of decode-time settings, before any work
        return resolved

    def sniff(self, data: bytes, /) -> bool:
        return False  # never chosen by detection: the plain codec claims the stream


class TrainedOnHyperprior(HyperpriorCodec):
    """The plain ``hyperprior`` codec bound to :data:`HYPERPRIOR_SHA256` (what the generative decoders expect).

    Its streams are ordinary hyperprior streams: the plain codec decodes them (finding the file by
    the SHA-256 in their header) whichever weights it ships.
    """

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str | None = None) -> None:
        super().__init__(weights, device, sha256=None if weights else HYPERPRIOR_SHA256)


class JpegRestoreCodec(GenerativeDecoder, JpegCodec):
    """Plain JPEG in the archive; the view is restored by a conditional denoiser (DCT + diffusion).

    Dataflow::

        encode: pixels -> libjpeg-turbo -> .jpg (readable by every viewer)
        decode: .jpg -> JPEG decode y -> Restorer F(x_t, y, t), 1..8 steps (seeded) -> restored view
    """

    name = "jpeg-restore"
    summary = "plain JPEG stored; decoded view restored by a small conditional denoiser (generative)"
    capabilities = Capabilities(dtypes=("uint8",), min_bands=1, max_bands=3, lossy=True, lossless=False,
                                extension=".jpg", tiff_compression=None, band_counts=(1, 3))
    params = (*JpegCodec.params, STEPS, SEED)
    weights_name = "restore-jpeg"
    plain_codec = "jpeg"
    decode_params = ("steps", "seed")


class HyperpriorDiffusionCodec(GenerativeDecoder, TrainedOnHyperprior):
    """The hyperprior's stream, decoded by the MSE decoder then a few-step conditional denoiser.

    Dataflow::

        .rclc -> integer decoder -> x_mse -> Restorer F(x_t, x_mse, t), N <= 8 steps, seed -> x
    """

    name = "hyperprior-diffusion"
    summary = "hyperprior stream; diffusion decoder conditioned on the MSE reconstruction (generative)"
    params = (*LearnedCodec.params, Param(**{**STEPS.__dict__, "default": 4}), SEED)
    weights_name = "diffusion-hyperprior"
    plain_codec = "hyperprior"
    decode_params = ("steps", "seed")


class HyperpriorGanCodec(GenerativeDecoder, TrainedOnHyperprior):
    """The hyperprior's stream, decoded by a generator with a realism knob (HiFiC-style, multi-realism).

    Dataflow::

        encode: pixels -> hyperprior encoder -> .rclc tiles
                pixels -> texture energy per 256 px block and band -> .rclc extension (a few bytes)
        decode: .rclc -> integer decoder -> x_mse ---------------------+
                header quality -> rate level --------------------------+-> v = x_mse + realism * R(x_mse, noise(seed),
                                                                                          realism, rate)
                extension -> target energies at realism -> band gains on v - x_mse -> x
    """

    name = "hyperprior-gan"
    summary = "hyperprior stream; GAN decoder with a realism knob in [0, 1] (generative)"
    params = (*LearnedCodec.params, REALISM, SEED)
    weights_name = "gan-hyperprior"
    plain_codec = "hyperprior"
    decode_params = ("realism", "seed")

    def stream_quality(self, data: bytes) -> int | None:
        """The header's quality: the generator adds less texture where the stream already carries it."""
        from recodec.codecs.learned.bitstream import unpack

        return unpack(data)[0].quality

    def stream_hint(self, data: bytes) -> bytes | None:
        """The texture energies this codec's encoder appends (None in a plain hyperprior stream)."""
        from recodec.codecs.learned.bitstream import EXTENSION_TAGS, parse

        return parse(data)[2].get(EXTENSION_TAGS["texture"])

    def texture_note(self, data: bytes) -> str:
        """`` texture=recorded`` or `` texture=guessed ...``; "" for a stream wrapped in a container."""
        from recodec.errors import DecodeError

        try:
            recorded = self.stream_hint(data) is not None
        except DecodeError:  # not a bare .rclc (e.g. inside a container): say nothing rather than guess
            return ""
        return " texture=recorded" if recorded else " texture=guessed (no texture record: encode with hyperprior-gan)"

    def _extensions(self, rgb: np.ndarray) -> dict[int, bytes]:
        """The original's texture energy per block and band (a few bytes), for :meth:`stream_hint`."""
        from recodec.codecs.learned.bitstream import EXTENSION_TAGS

        return {EXTENSION_TAGS["texture"]: texture.encode_hint(rgb)}


#: ``recodec decode --decoder NAME`` / ``--enhance``: the generative codec for a plain stream's codec.
DECODERS: dict[tuple[str, str], str] = {
    ("hyperprior", "gan"): "hyperprior-gan",
    ("hyperprior", "diffusion"): "hyperprior-diffusion",
    ("jpeg", "enhance"): "jpeg-restore",
}
