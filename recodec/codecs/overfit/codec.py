"""The ``overfit`` codec: per-image latents and tiny networks (Cool-chic / C3), exact decoding.

Ladune, Henry, Clare, Sancho, Lambert, Philippe, Déforges (2023), "COOL-CHIC: Coordinate-based
Low Complexity Hierarchical Image Codec", ICCV.  Kim, Bauer, Theis, Schwarz, Dupont (2024),
"C3: High-performance and low-complexity neural compression from a single image or video",
CVPR.  Blard, Leguay, Ladune, Philippe, Clare, Henry, Déforges (2024), "Overfitted image
coding at reduced complexity", EUSIPCO.

Dataflow (encode = the optimisation of :mod:`.encoder`; decode below)::

    stream -> header, parameter block (exp-Golomb) -> integer synthesis + context model
           -> latents, wavefront by wavefront (range decoder, Laplace tables of :mod:`.tables`)
           -> exact upsampling cascade -> exact 1x1 MLP -> exact 3x3 residual convs
           -> low + round(out * span) -> (H, W, S) uint8 / uint16 / int16

Every decoder step is integer arithmetic (:mod:`.exact`), so decoded pixels are identical in
every process, thread count, CPU and GPU.  The distortion is the MSE on the documented peak
(:func:`recodec.metrics.resolve_peak`: 255 for 8-bit, the data range otherwise) over pixels
that are not ``nodata``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from recodec.codecs.base import Capabilities, Codec, Knob, Param, require, search_state
from recodec.errors import DecodeError
from recodec.formats.magic import is_format

#: Environment variable choosing the device of the encoder's optimisation and of the synthesis.
DEVICE_ENV = "RECODEC_OVERFIT_DEVICE"


def _default_device() -> str:
    import torch

    return os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")


def value_range(array: np.ndarray, valid: np.ndarray | None) -> tuple[int, int]:
    """(low, span) of the normalisation: the dtype's range for 8-bit, the valid data's range otherwise."""
    if array.dtype == np.uint8:
        return 0, 255
    values = array[valid] if valid is not None else array
    if values.size == 0:
        return 0, 1
    low, high = int(values.min()), int(values.max())
    return low, max(1, high - low)


class OverfitCodec(Codec):
    """Per-image overfitted latents + synthesis + autoregressive context model, bit-exact decoder."""

    name = "overfit"
    summary = "overfitted neural codec (Cool-chic/C3 family): per-image latents and tiny networks, exact decoder"
    capabilities = Capabilities(dtypes=("uint8", "uint16", "int16"), min_bands=1, max_bands=16, lossy=True,
                                lossless=False, extension=".rcof", tiff_compression=None)
    knob = Knob("lmbda", 0.0002, 100.0, 0.01, higher_is_better=True, integer=False,
                description="rate–distortion weight: loss = lmbda * 255^2 * MSE(peak-normalised) + bpp "
                            "(photos ~0.001-0.05; 16-bit scenes at 45+ dB need ~1-100)",
                geometric=True)
    params = (
        Param("preset", str, "fast", "optimisation length and network size", ("fast", "balanced", "archival")),
        Param("iterations", int, 0, "optimisation steps (0 = the preset's)"),
        Param("nodata", float, None, "samples excluded from the distortion (the pipeline passes the image's)"),
    )
    extra = "learned"

    def load(self) -> None:
        """Import torch and constriction."""
        require("torch", self.name, self.extra)
        require("constriction", self.name, self.extra)

    def version(self) -> str:
        import torch

        from recodec.codecs.overfit import bitstream

        return f"recodec-overfit/{bitstream.FORMAT_VERSION} torch {torch.__version__}"

    def sniff(self, data: bytes, /) -> bool:
        return is_format("OVERFIT", data)

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import constriction
        import torch

        from recodec.codecs.overfit import bitstream
        from recodec.codecs.overfit import latents as L
        from recodec.codecs.overfit.encoder import PRESETS, Problem, fit
        from recodec.codecs.overfit.exact import ExactArm
        from recodec.metrics import resolve_peak, valid_mask
        from recodec.precision import native_bf16

        preset = PRESETS[params["preset"]]
        h, w, bands = array.shape
        valid = valid_mask(array, params["nodata"])
        low, span = value_range(array, valid)
        peak, _ = resolve_peak(array, mask=valid)
        x = torch.from_numpy(((array.astype(np.float64) - low) / span).astype(np.float32).transpose(2, 0, 1))[None]
        mask = torch.ones(1, 1, h, w) if valid is None else torch.from_numpy(valid.astype(np.float32))[None, None]
        bf16 = array.dtype == np.uint8 and native_bf16()
        problem = Problem(x, mask, (span / peak) ** 2, float(params["lmbda"]), h * w, bf16=bf16)
        arch = preset.arch(bands, h, w)
        iterations = int(params["iterations"]) or preset.iterations
        session = search_state()
        key = ("overfit", array.shape, array.dtype.str, hash(array.tobytes()), params["preset"])
        warm = session.get(key) if session is not None else None
        fitted = fit(problem, preset, arch, iterations=iterations, device=_default_device(), warm=warm)
        if session is not None:
            session[key] = fitted.state
        plan = L.make_plan(h, w, arch.levels)
        enc = constriction.stream.queue.RangeEncoder()
        L.encode(plan, ExactArm(fitted.net), L.fill(plan, fitted.latents), enc)
        words = np.asarray(enc.get_compressed(), dtype="<u4").tobytes()
        header = bitstream.Header(array.dtype.name, arch, h, w, low, span)
        return bitstream.pack(header, fitted.params, words)

    def _decode(self, data: bytes) -> np.ndarray:
        import constriction
        import torch

        from recodec.codecs.overfit import bitstream
        from recodec.codecs.overfit import latents as L
        from recodec.codecs.overfit.exact import OUT_FRAC, ExactArm, synthesize

        header, params, words = bitstream.unpack(data)
        net = bitstream.read_params(params, header.arch)
        plan = L.make_plan(header.height, header.width, header.arch.levels)
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(words, dtype="<u4").astype(np.uint32))
        try:
            buf = L.decode(plan, ExactArm(net), dec)
        except (ValueError, RuntimeError, AssertionError) as exc:  # a corrupt range-coder body
            raise DecodeError(f"overfit: latent data is corrupt ({exc})") from exc
        device = os.environ.get(DEVICE_ENV) or "cpu"
        with torch.no_grad():
            lat = [torch.from_numpy(g.astype(np.float64))[None, None].to(device) for g in plan.grids(buf)]
            out = synthesize(net, lat)
            # low + round(out * span / 2**OUT_FRAC): integers below 2**33, exact in float64
            values = torch.floor((out * header.span + 2.0 ** (OUT_FRAC - 1)) * 2.0**-OUT_FRAC) + header.low
        info = np.iinfo(header.dtype)
        pixels = values.clamp(int(info.min), int(info.max)).cpu().numpy().astype(header.dtype)
        return pixels.transpose(1, 2, 0)
