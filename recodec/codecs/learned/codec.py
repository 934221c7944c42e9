"""The ``factorized`` and ``hyperprior`` codecs: learned transform coding with exact decoding.

Encoding runs the float analysis transforms (CPU, or CUDA when asked), quantises, and
range-codes the integers with tables from the weights file.  Decoding runs only integer
networks (:mod:`.integer`) and integer tables (:mod:`.entropy`), so the pixels a stream
decodes to are the same in every process, for every thread count, on every CPU and on
CUDA.  Images are cut into independent tiles (default 512x512, edge-replicated up to a
multiple of 64) so memory stays bounded whatever the image size.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recodec.codecs.base import Capabilities, Codec, Knob, Param, require
from recodec.codecs.learned import bitstream
from recodec.codecs.weights import find_weights, load_pinned, pinned_sha256, runtime_for
from recodec.errors import CodecError, DecodeError
from recodec.formats.magic import is_format

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "hyperprior.pt"
#: Latents are 1/16 and hyper-latents 1/64 of the tile edge, so tiles are padded to 64.
ALIGN = 64
#: Accepted ``refine`` iteration counts (0: off; see :mod:`.refine`).
REFINE_CHOICES = (0, 25, 50, 100, 200, 400, 800)
DEFAULT_TILE = 512
#: Environment variable choosing the device of the (float) encoder and the integer decoder.
DEVICE_ENV = "RECODEC_LEARNED_DEVICE"


@dataclass
class Runtime:
    """Loaded weights: float encoder, integer decoder networks and entropy tables."""

    sha256: bytes
    n: int
    m: int
    qualities: int
    hyper: bool
    encoder: Any
    gs: Any
    hs: Any
    tab_y: Any
    tab_z: Any
    tab_s: Any
    device: str


_RUNTIMES: dict[tuple[str, str], Runtime] = {}
_LOCK = threading.Lock()


def load_runtime(weights: Path, device: str = "cpu", *, expected: str | None = None) -> Runtime:
    """Check the SHA-256 (pinned, or ``expected``), ``torch.load(weights_only=True)`` and build the runtime (cached)."""
    key = (str(weights.resolve()), device)
    with _LOCK:
        if key in _RUNTIMES:
            return _RUNTIMES[key]
        import torch

        from recodec.codecs.learned import integer as I
        from recodec.codecs.learned.entropy import TableSet
        from recodec.codecs.learned.models import build_model

        state, actual = load_pinned(weights, "learned", expected=expected)
        _fmt, n, m, qualities, hyper = (int(v) for v in state["meta"])
        model = build_model("hyperprior" if hyper else "factorized", n, m, qualities)
        enc = {k[4:]: v for k, v in state.items() if k.startswith("enc.")}
        missing = model.load_state_dict(enc, strict=False).missing_keys
        if any(k.startswith(("g_a.", "h_a.", "log_gain")) for k in missing):
            raise CodecError(f"learned: {weights.name} lacks encoder weights")
        model = model.to(device).eval().requires_grad_(False)

        def tables(prefix: str) -> TableSet | None:
            if f"tab.{prefix}.counts" not in state:
                return None
            return TableSet(*(state[f"tab.{prefix}.{k}"].numpy() for k in ("counts", "lengths", "offsets")))

        def layers(prefix: str) -> list[Any]:
            count = len({k.split(".")[1] for k in state if k.startswith(prefix + ".") and k.split(".")[1].isdigit()})
            return [I.layer_from_state(f"{prefix}.{i}", state, device) for i in range(count)]

        ig_frac, afrac0 = (int(v) for v in state["gs.frac"])
        gs = I.IntSynthesis(state["gs.inv_gain"].to(device=device, dtype=torch.float64), ig_frac, afrac0,
                            layers("gs"))
        tab_s = tables("s")
        hs = None
        if hyper and tab_s is not None:
            hs = I.IntHyperSynthesis(layers("hs"), int(state["hs.scale_offset"]), len(tab_s))
        rt = Runtime(bytes.fromhex(actual), n, m, qualities, bool(hyper), model, gs, hs,
                     tables("y"), tables("z"), tab_s, device)
        _RUNTIMES[key] = rt
        return rt


class LearnedCodec(Codec):
    """Shared machinery of the two learned codecs (tiling, container, gray handling)."""

    model_kind: ClassVar[str]
    capabilities = Capabilities(dtypes=("uint8",), min_bands=1, max_bands=3, lossy=True,
                                lossless=False, extension=".rclc", tiff_compression=None, band_counts=(1, 3))
    knob = Knob("quality", 1, 9, 7, higher_is_better=True, integer=True,
                description="rate point 1..9 of the shipped ladder (lambda 0.00025 .. 0.0483)",
                quality_shortcut=False)
    params = (
        Param("tile", int, DEFAULT_TILE, "tile edge in pixels; tiles are coded independently",
              (256, 512, 1024)),
        Param("refine", int, 0, "encoder effort: iterations of latent refinement (SGA, Yang et al. 2020; "
              "about one decoder pass each); 0 = the analysis transform's latents.  The stream and "
              "decoder are unchanged", REFINE_CHOICES),
    )
    extra = "learned"

    def __init__(self, weights: str | os.PathLike[str] | None = None, device: str | None = None, *,
                 sha256: str | None = None) -> None:
        self.weights = Path(weights) if weights else DEFAULT_WEIGHTS
        self.device = device or os.environ.get(DEVICE_ENV, "cpu")
        #: Encode with the weights of this SHA-256 (found like a stream's) instead of ``weights``' own.
        self.sha256 = sha256
        self._rt: Runtime | None = None

    def load(self) -> None:
        """Import torch and constriction, verify and load the weights (once)."""
        if self._rt is not None:
            return
        require("torch", self.name, self.extra)
        require("constriction", self.name, self.extra)
        path, expected = self.weights_file()
        rt = load_runtime(path, self.device, expected=expected)
        if self.model_kind == "hyperprior" and not rt.hyper:
            raise CodecError(f"learned: {path.name} holds no hyperprior")
        if rt.qualities != self.knob.high:
            self.knob = Knob(**{**self.knob.__dict__, "high": rt.qualities,
                                "default": min(self.knob.default, rt.qualities)})
        self._rt = rt

    def weights_file(self) -> tuple[Path, str | None]:
        """(file, SHA-256 it must have; None: its pin in ``pins.json``) of the weights this codec encodes with."""
        if self.sha256 is None or pinned_sha256(self.weights, self.name) == self.sha256:
            return self.weights, None
        return find_weights(self.sha256, self.weights.parent, self.name), self.sha256

    @property
    def runtime(self) -> Runtime:
        """The loaded runtime (loads on first use)."""
        self.load()
        assert self._rt is not None
        return self._rt

    def runtime_for(self, sha256: bytes) -> Runtime:
        """The runtime of the weights a stream names: these, or older ones found by SHA-256."""
        return runtime_for(self.runtime, sha256, self.weights.parent, self.name,
                           lambda path, sha: load_runtime(path, self.device, expected=sha))

    def version(self) -> str:
        import constriction
        import torch

        rt = self.runtime
        return (f"recodec-learned/{bitstream.FORMAT_VERSION} weights sha256:{rt.sha256.hex()[:16]} "
                f"torch {torch.__version__} constriction {getattr(constriction, '__version__', '?')}")

    def sniff(self, data: bytes, /) -> bool:
        return is_format("LEARNED", data) and len(data) > 5 and data[5] == bitstream.MODEL_IDS[self.model_kind]

    # -- container --------------------------------------------------------------------------

    def _encode(self, array: np.ndarray, params: dict[str, Any]) -> bytes:
        import torch

        rt = self.runtime
        q = int(params["quality"])
        tile = int(params["tile"])
        refine = int(params.get("refine", 0))
        rgb = np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array
        h, w = rgb.shape[:2]
        payloads = []
        with torch.no_grad():
            for top in range(0, h, tile):
                for left in range(0, w, tile):
                    payloads.append(self._encode_tile(rt, rgb[top:top + tile, left:left + tile], q - 1, refine))
        header = bitstream.Header(self.model_kind, rt.sha256, q, array.shape[2], h, w, tile)
        return bitstream.pack(header, payloads, self._extensions(rgb))

    def _extensions(self, rgb: np.ndarray) -> dict[int, bytes]:
        """``{tag: payload}`` the stream carries beside the tiles (:data:`.bitstream.EXTENSION_TAGS`): none here."""
        return {}

    def _decode(self, data: bytes) -> np.ndarray:
        import torch

        header, payloads = bitstream.unpack(data)
        if header.model != self.model_kind:
            raise DecodeError(f"{self.name}: stream was written by the {header.model} codec")
        rt = self.runtime_for(header.weights_sha256)
        if not 1 <= header.quality <= rt.qualities:
            raise DecodeError(f"{self.name}: quality {header.quality} outside 1..{rt.qualities}")
        out = np.empty((header.height, header.width, 3), dtype=np.uint8)
        it = iter(payloads)
        with torch.no_grad():
            for top in range(0, header.height, header.tile):
                for left in range(0, header.width, header.tile):
                    th = min(header.tile, header.height - top)
                    tw = min(header.tile, header.width - left)
                    pixels = self._decode_tile(rt, next(it), th, tw, header.quality - 1)
                    out[top:top + th, left:left + tw] = pixels
        if header.bands == 1:
            # Integer mean of the replicated channels: exact, so still bit-reproducible.
            return ((out.astype(np.uint16).sum(axis=2) + 1) // 3).astype(np.uint8)[:, :, None]
        return out

    # -- one tile ---------------------------------------------------------------------------

    def _pixels(self, rt: Runtime, tile: np.ndarray) -> Any:
        """One tile as a float (1, 3, H, W) tensor in [0, 1], edge-replicated to a multiple of ALIGN."""
        import torch

        h, w = tile.shape[:2]
        padded = np.pad(tile, ((0, -h % ALIGN), (0, -w % ALIGN), (0, 0)), mode="edge")
        return torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(rt.device)

    def _analysis(self, rt: Runtime, tile: np.ndarray, q: int) -> Any:
        """Gained float latent of one tile, padded by edge replication to a multiple of ALIGN."""
        return rt.encoder.analysis(self._pixels(rt, tile), q)

    def _refined(self, rt: Runtime, tile: np.ndarray, q: int, start: Any, offset: Any, tables: Any,
                 rows: Any, iterations: int) -> Any:
        """``round(start)``, or with ``iterations`` > 0 the integers :mod:`.refine` finds (float tensor)."""
        import torch

        if iterations <= 0:
            return torch.round(start)
        from recodec.codecs.learned.lambdas import DEFAULT_LAMBDAS
        from recodec.codecs.learned.refine import float_synthesis, refine_symbols

        if rt.qualities != len(DEFAULT_LAMBDAS):
            raise CodecError(f"{self.name}: refine needs weights of the {len(DEFAULT_LAMBDAS)}-point ladder")
        inv_gain = (rt.gs.inv_gain[q] * 2.0 ** -rt.gs.inv_gain_frac).float().view(1, -1, 1, 1).to(rt.device)
        with torch.enable_grad():
            return refine_symbols(float_synthesis(rt), self._pixels(rt, tile), tile.shape[:2], start, offset,
                                  inv_gain, tables, rows, DEFAULT_LAMBDAS[q], iterations=iterations)

    @staticmethod
    def _padded(n: int) -> int:
        return n + (-n % ALIGN)

    def _encode_tile(self, rt: Runtime, tile: np.ndarray, q: int, refine: int = 0) -> bytes:
        raise NotImplementedError

    def _decode_tile(self, rt: Runtime, payload: bytes, h: int, w: int, q: int) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _finish(encoder: Any) -> bytes:
        return np.asarray(encoder.get_compressed(), dtype="<u4").tobytes()

    @staticmethod
    def _decoder(payload: bytes) -> Any:
        import constriction

        return constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))


class FactorizedCodec(LearnedCodec):
    """Learned codec with the factorized prior of Ballé et al. 2017 (see :class:`.models.FactorizedPrior`)."""

    name = "factorized"
    model_kind = "factorized"
    summary = "learned transform coding, factorized prior (Ballé 2017), exact integer decoder"

    def _encode_tile(self, rt: Runtime, tile: np.ndarray, q: int, refine: int = 0) -> bytes:
        import constriction
        import torch

        y = self._analysis(rt, tile, q)
        rows = (q * rt.m + np.arange(rt.m))[:, None]
        row_map = torch.from_numpy(rows).to(y.device).view(1, rt.m, 1, 1).expand_as(y)
        y_q = self._refined(rt, tile, q, y, torch.zeros_like(y), rt.tab_y, row_map, refine)
        y_int = y_q[0].cpu().numpy().astype(np.int64).reshape(rt.m, -1)
        y_int = rt.tab_y.clamp(y_int, rows)
        enc = constriction.stream.queue.RangeEncoder()
        for c in range(rt.m):
            rt.tab_y.encode(enc, y_int[c], q * rt.m + c)
        return self._finish(enc)

    def _decode_tile(self, rt: Runtime, payload: bytes, h: int, w: int, q: int) -> np.ndarray:
        import torch

        dec = self._decoder(payload)
        hy, wy = self._padded(h) // 16, self._padded(w) // 16
        y = np.stack([rt.tab_y.decode(dec, hy * wy, q * rt.m + c) for c in range(rt.m)])
        y_hat = torch.from_numpy(y.reshape(1, rt.m, hy, wy))
        pixels = rt.gs(y_hat, 0, q)
        return pixels[:, :h, :w].permute(1, 2, 0).numpy()


class HyperpriorCodec(LearnedCodec):
    """Learned codec with the mean-scale hyperprior of Ballé et al. 2018 (see :class:`.models.ScaleHyperprior`)."""

    name = "hyperprior"
    model_kind = "hyperprior"
    summary = "learned transform coding, mean-scale hyperprior (Ballé 2018), exact integer decoder"

    def tile_symbols(self, rt: Runtime, tile: np.ndarray, q: int,
                     refine: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What one tile's stream codes at quality index ``q``: hyper-latent ``z`` (N, h/64, w/64), and per
        latent its scale index and rounded (or ``refine``-d) residual (M, h/16, w/16), all int64."""
        import torch

        from recodec.codecs.learned.integer import MEAN_FRAC

        y = self._analysis(rt, tile, q)
        z = torch.round(rt.encoder.h_a(y)[0]).cpu().numpy().astype(np.int64)
        n, zh, zw = z.shape
        z = rt.tab_z.clamp(z.reshape(n, -1), np.arange(n)[:, None]).reshape(n, zh, zw)
        index, mean = rt.hs(torch.from_numpy(z)[None])
        # The encoder may round in float: only the integers it writes must be reproducible.
        mu = (mean.double() / 2**MEAN_FRAC).to(y.device)
        residual = self._refined(rt, tile, q, y.double() - mu, mu, rt.tab_s, index.to(y.device), refine)
        residual = residual[0].cpu().numpy().astype(np.int64)
        index = index[0].numpy()
        return z, index, rt.tab_s.clamp(residual, index)

    def _encode_tile(self, rt: Runtime, tile: np.ndarray, q: int, refine: int = 0) -> bytes:
        import constriction

        from recodec.codecs.learned.entropy import encode_grouped

        z, index, residual = self.tile_symbols(rt, tile, q, refine)
        enc = constriction.stream.queue.RangeEncoder()
        for c in range(z.shape[0]):
            rt.tab_z.encode(enc, z[c], c)
        encode_grouped(rt.tab_s, enc, residual, index)
        return self._finish(enc)

    def _decode_tile(self, rt: Runtime, payload: bytes, h: int, w: int, q: int) -> np.ndarray:
        import torch

        from recodec.codecs.learned.entropy import decode_grouped
        from recodec.codecs.learned.integer import MEAN_FRAC

        dec = self._decoder(payload)
        zh, zw = self._padded(h) // ALIGN, self._padded(w) // ALIGN
        z = np.stack([rt.tab_z.decode(dec, zh * zw, c) for c in range(rt.n)]).reshape(1, rt.n, zh, zw)
        index, mean = rt.hs(torch.from_numpy(z))
        residual = decode_grouped(rt.tab_s, dec, index.numpy()).reshape(mean.shape)
        y_fixed = torch.from_numpy(residual) * 2**MEAN_FRAC + mean
        pixels = rt.gs(y_fixed, MEAN_FRAC, q)
        return pixels[:, :h, :w].permute(1, 2, 0).numpy()


def codec_for_weights(model: str, weights: str | os.PathLike[str] | None = None, *,
                      sha256: str | None = None) -> LearnedCodec:
    """A codec instance bound to a non-default weights file (with ``pins.json`` beside it), or to the
    shipped or retired file of a SHA-256 (an earlier release's weights, to encode as it did)."""
    cls = {"factorized": FactorizedCodec, "hyperprior": HyperpriorCodec}[model]
    return cls(weights=weights, sha256=sha256)
