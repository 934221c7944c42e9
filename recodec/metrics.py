"""Quality metrics computed on what the decoder really returns.

One torch implementation serves every dtype (uint8, uint16, int16, float32...) and
any band count; torch is imported lazily so ``import recodec.metrics`` stays cheap.
Both images are turned band-planar, (N, S, H, W), in one strided conversion: float32
for integers up to 16 bits (exact), float64 for wider integers and float data on the CPU.
The pointwise metrics (MSE, max error, SAM) then run over row strips of all bands, with the
squared errors summed in float64 (exact for integer data, so PSNR does not depend on the
summation order).  SSIM and MS-SSIM (most of the cost) run in float32: per row strip, all
bands at once, four moment maps (the sum u = x + y and difference v = x - y of the
peak-normalised images, and their squares) are blurred by the separable 11-tap Gaussian and
combined, each MS-SSIM scale reusing the previous one's down-sampled images; sums are
float64.  The hot functions are packaged :class:`recodec.kernels.CompiledTwin` s: the same
Python code, compiled ahead of time by AOTInductor into fused C++ loops for any image size,
once per machine (after :data:`recodec.kernels.COMPILE_AFTER_SECONDS` of eager work) and then
loaded by every process at its first call (eager before the machine has them, on a GPU, and
wherever compiling fails).  Accuracy against
a float64 run and against pytorch-msssim is tested (tests/test_metrics.py, eager) and
compiled-against-eager agreement too (tests/test_kernels.py): PSNR within 0.01 dB, SSIM and
MS-SSIM within 1e-5 on 8- and 16-bit images.  Memory is bounded whatever the scene: the
pointwise pass converts one row strip at a time, and SSIM takes bands in groups of at most
:data:`SSIM_GROUP_SAMPLES` samples (all bands of a photo at once).  :func:`compute_metrics_batch` stacks images of equal
shape into one batch, which is what makes the GPU pay off.  Under CPU oversubscription
(several worker processes per core) give torch one thread (``OMP_NUM_THREADS=1``, Ray's
default for tasks, or ``torch.set_num_threads(1)``): with spinning OpenMP threads a 512x512
RGB comparison measured 6.5 s on 2 busy cores, against 0.09 s single-threaded.

Conventions the manifest and the target search rely on:

* **Peak** (the ``L`` of PSNR and the SSIM data range), first rule that applies:
  an explicit ``peak`` (``explicit``); ``2**bit_depth - 1`` when ``bit_depth`` is
  given and is narrower than the container, or the data is 8-bit (``bit_depth``:
  a 12-bit TIFF, a 4-bit PNG, a declared sensor depth); 255 for 8-bit and 1 for
  bool data (``dtype``); for wider integer data (uint16, int16, 32-bit) without a
  narrower declared depth, and for float data, the dynamic range ``max - min`` of
  the valid pixels of the reference (``data_range``): a 16-bit container holding an
  11-bit sensor's values must not get 65,535 as its peak, which would report 20 dB
  too much.  A constant integer image falls back to its dtype's range, a constant
  float image to 1.0.  The manifest records the peak and its rule.
* **Identical images** give ``psnr = +inf`` (also per band; ``mse = 0``).  The
  manifest stores it as +inf, which Parquet/Arrow float64 columns hold natively;
  use :func:`finite_or_none` where a format (JSON) cannot.
* **SSIM** is Wang et al. 2004 ("Image quality assessment: from error visibility
  to structural similarity", IEEE TIP 13(4)): 11x11 Gaussian window, sigma 1.5,
  K1 = 0.01, K2 = 0.03, data range = peak, 'valid' filtering (no padding), mean
  of the SSIM map per band, then mean over bands.  It matches ``pytorch_msssim``.
* **MS-SSIM** is Wang et al. 2003 ("Multiscale structural similarity for image
  quality assessment", Asilomar): 5 scales, weights (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333), contrast-structure at the first four, full SSIM at the last,
  2x2 average down-sampling, negative terms clipped to 0 (as pytorch_msssim).
  Odd sizes are replicate-padded before down-sampling, so a side ``s`` becomes
  ``ceil(s / 2)``.  Fallback when the image is too small: a scale is used only
  while its shorter side is still >= 11 (5 scales need a shorter side >= 161);
  with fewer scales the first ``n`` weights are renormalised to sum to 1 and
  ``ms_ssim_fallback = "<n>_scales"``.  Below 11 pixels even one full window
  does not fit: SSIM and MS-SSIM then use one scale with the largest odd window
  that fits (sigma scaled by window / 11), ``ms_ssim_fallback =
  "single_scale_window_<w>"``; a 1x1 image works (window 1, luminance term only).
* **SAM** (spectral angle mapper, Kruse et al. 1993) in degrees, mean over pixels,
  for 2 bands or more, else None.  A pixel whose reference and decoded vectors are
  both zero has angle 0; when exactly one of them is zero the angle is 90 degrees
  by convention.  The angle is computed as ``2 asin(|a/|a| - b/|b|| / 2)``, which
  stays accurate for the tiny angles of near-lossless coding (``acos`` does not).
* **nodata**: when given, a pixel whose reference equals ``nodata`` in *every*
  band (NaN matches NaN) is invalid.  PSNR, MSE, max abs error and SAM use valid
  pixels only: decoded values at nodata pixels are replaced by the reference's
  (both by 0 where the reference is NaN), so they carry no error.  SSIM/MS-SSIM
  maps are averaged with weights equal to the Gaussian-weighted fraction of valid
  pixels in each window (1 inside valid areas, 0 in nodata areas, in between
  along their edges), and at coarser MS-SSIM scales with the down-sampled mask.  With no valid pixel at all there
  is nothing to get wrong: psnr = inf, errors 0, SSIM 1 (``valid_pixels = 0``
  says so).  NaN in a valid pixel is not guessed at: it makes the metrics NaN.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from recodec.kernels import CompiledTwin, Shapes

if TYPE_CHECKING:  # torch is heavy: imported inside the functions that need it
    import torch

log = logging.getLogger(__name__)

#: SSIM constants of Wang et al. 2004.
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1 = 0.01
K2 = 0.03
#: MS-SSIM scale weights of Wang et al. 2003, finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

#: ``ms_ssim_fallback`` when SSIM/MS-SSIM were not asked for (``structural=False``).
NOT_COMPUTED = "not_computed"
#: Largest number of pixels (images x H x W) put in one GPU batch.
DEFAULT_MAX_BATCH_PIXELS = 1 << 26
#: Output samples per band of one SSIM row strip: its four moment maps stay cache-sized.
SSIM_STRIP_ELEMENTS = 1 << 16
#: Pixels per chunk of the pointwise pass (MSE, max error, SAM): bounds its temporaries.
POINTWISE_CHUNK = 1 << 18
#: Samples (images x pixels x bands) of one band group of the SSIM pass: its two planar float32
#: copies and their down-sampled scales take about 11 bytes per sample.
SSIM_GROUP_SAMPLES = 1 << 26


@dataclass
class Metrics:
    """Quality of a decoded image against its reference."""

    psnr: float                     # dB; inf when identical
    ssim: float
    ms_ssim: float                  # falls back (documented) when the image is too small for 5 scales
    max_abs_error: float
    psnr_per_band: list[float]
    sam: float | None               # spectral angle in degrees, None for 1 band
    peak: float                     # the peak used for PSNR
    mse: float = 0.0                # mean squared error over valid pixels and bands, in data units
    ms_ssim_scales: int = 5         # scales actually used by MS-SSIM
    ms_ssim_fallback: str | None = None  # None, "<n>_scales", "single_scale_window_<w>" or "not_computed"
    ssim_window: int = WIN_SIZE     # window side used at the finest scale (< 11 only for tiny images)
    valid_pixels: int = 0           # pixels compared (all of them unless nodata masks some)
    masked: bool = False            # True when a nodata value was applied
    peak_rule: str = ""             # which rule chose the peak: explicit, bit_depth, dtype, data_range
    device: str = "cpu"             # where it was computed

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of every field (what the manifest and target search consume)."""
        return asdict(self)


def finite_or_none(value: float | None) -> float | None:
    """``value`` unless it is inf/NaN (for formats such as JSON that cannot hold them)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _as_hwc(array: np.ndarray) -> np.ndarray:
    """:func:`recodec.formats.image.as_hwc`, with a bad shape as ValueError (metrics take any arrays)."""
    from recodec.errors import UnsupportedImageError
    from recodec.formats.image import as_hwc

    try:
        return as_hwc(array)
    except UnsupportedImageError as exc:
        raise ValueError(str(exc)) from exc


def valid_mask(reference: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """(H, W) bool mask of pixels that are not nodata in every band, or None without nodata."""
    if nodata is None:
        return None
    ref = _as_hwc(reference)
    if isinstance(nodata, float) and math.isnan(nodata):
        is_nodata = np.isnan(ref) if ref.dtype.kind == "f" else np.zeros(ref.shape, bool)
    else:
        is_nodata = ref == nodata
    return ~np.all(is_nodata, axis=2)


def resolve_peak(reference: np.ndarray, *, peak: float | None = None, bit_depth: int | None = None,
                 mask: np.ndarray | None = None) -> tuple[float, str]:
    """The PSNR peak and the rule that chose it (see the module docstring)."""
    if peak is not None:
        if not peak > 0:
            raise ValueError(f"peak must be positive, got {peak}")
        return float(peak), "explicit"
    ref = _as_hwc(reference)
    if bit_depth is not None:
        if not 1 <= int(bit_depth) <= 64:
            raise ValueError(f"bit_depth must be 1..64, got {bit_depth}")
        if ref.dtype.kind not in "uib" or ref.dtype.itemsize == 1 or int(bit_depth) < 8 * ref.dtype.itemsize:
            return float(2 ** int(bit_depth) - 1), "bit_depth"
    if ref.dtype == np.bool_:
        return 1.0, "dtype"
    if ref.dtype.kind in "ui" and ref.dtype.itemsize == 1:
        info = np.iinfo(ref.dtype)
        return float(int(info.max) - int(info.min)), "dtype"
    values = ref[mask] if mask is not None else ref
    if ref.dtype.kind == "f":
        values = values[np.isfinite(values)]
    span = float(values.max()) - float(values.min()) if values.size else 0.0
    if span > 0:
        return span, "data_range"
    if ref.dtype.kind in "ui":  # constant integer image: nothing better than the container's range
        info = np.iinfo(ref.dtype)
        return float(int(info.max) - int(info.min)), "dtype"
    return 1.0, "data_range"


def _pick_device(device: str | None) -> "torch.device":
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("metrics: device %r requested but CUDA is not available; using the CPU", device)
        return torch.device("cpu")
    return dev


def _compute_dtype(dev: "torch.device") -> "torch.dtype":
    """Pointwise metrics (MSE, max error, SAM): float64 on the CPU, float32 on a GPU.

    The pointwise pass is a few operations per sample, so float64 costs little on the CPU and
    keeps 32-bit data and tiny spectral angles exact; a GPU is slow at float64.
    """
    import torch

    return torch.float64 if dev.type == "cpu" else torch.float32


def _ssim_dtype() -> "torch.dtype":
    """SSIM / MS-SSIM maps: float32 everywhere (the cost is there); their sums are float64.

    Values are divided by the peak and centred on 0.5 before the moments are taken, so the
    variance ``E[x^2] - mu^2`` cancels on numbers of at most 0.25: measured against a float64
    run, SSIM and MS-SSIM agree within 1e-6 on 8- and 16-bit images (tests/test_metrics.py,
    which swaps this function for a float64 one).
    """
    import torch

    return torch.float32


def _ms_ssim_plan(height: int, width: int) -> tuple[int, int, str | None]:
    """(scales, finest window, fallback label) for an image of this size."""
    side = min(height, width)
    if side < WIN_SIZE:
        win = side if side % 2 else side - 1
        return 1, max(win, 1), f"single_scale_window_{max(win, 1)}"
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= WIN_SIZE:
        scales += 1
        side = (side + 1) // 2
    return scales, WIN_SIZE, (None if scales == len(MS_SSIM_WEIGHTS) else f"{scales}_scales")


def _gaussian(win: int) -> list[float]:
    """Normalised 1-D Gaussian taps (plain floats: no device sync when used as scalars)."""
    sigma = WIN_SIGMA * win / WIN_SIZE  # keeps the window's shape when a tiny image forces it smaller
    taps = [math.exp(-((k - (win - 1) / 2) ** 2) / (2 * sigma**2)) for k in range(win)]
    total = sum(taps)
    return [t / total for t in taps]


def _blur(t: "torch.Tensor", taps: list[float]) -> "torch.Tensor":
    """Separable 'valid' Gaussian filtering of the last two axes, as in-place shifted sums.

    Eleven fused multiply-adds over slices are ~4x faster than a grouped conv2d on the CPU in
    float32 (measured on 768x512), and just as good on a GPU (the operation is memory-bound);
    callers keep the inputs cache-sized (row strips of :data:`SSIM_STRIP_ELEMENTS`).
    """
    win = len(taps)
    out_h, out_w = t.shape[-2] - win + 1, t.shape[-1] - win + 1
    rows = t[..., :, 0:out_w] * taps[0]
    for k in range(1, win):
        rows.add_(t[..., :, k:k + out_w], alpha=taps[k])
    out = rows[..., 0:out_h, :] * taps[0]
    for k in range(1, win):
        out.add_(rows[..., k:k + out_h, :], alpha=taps[k])
    return out


def _down(t: "torch.Tensor") -> "torch.Tensor":
    """2x2 average down-sampling; odd sides are replicate-padded so a side s becomes ceil(s/2)."""
    import torch.nn.functional as F

    pad_h, pad_w = t.shape[2] % 2, t.shape[3] % 2
    if pad_h or pad_w:
        t = F.pad(t, (0, pad_w, 0, pad_h), mode="replicate")
    return _DOWN_EVEN(t)


def _down_even(t: "torch.Tensor") -> "torch.Tensor":
    """2x2 average of a (N, C, H, W) tensor with even H and W.

    ``avg_pool2d`` rather than four strided adds (1.7x faster eagerly): its output size needs no
    parity guard, so one packaged kernel serves every size.
    """
    import torch.nn.functional as F

    return F.avg_pool2d(t, 2)


def _ssim_strip(xs: "torch.Tensor", ys: "torch.Tensor", ws: "torch.Tensor | None", peak: "torch.Tensor",
                taps: list[float]) -> "tuple[torch.Tensor, ...]":
    """Float64 sums per image and band (N, S) over one row strip: (SSIM map, contrast-structure map[, weights]).

    xs, ys are (N, S, rows + win - 1, W) strips in data units; they are divided by ``peak``
    (N, 1, 1, 1) and centred (minus 0.5), so the constants use a data range of 1.  Four moment
    maps are blurred instead of five, in the sum and difference u = x + y, v = x - y:
    ``sigma_x^2 + sigma_y^2 = (var_u + var_v) / 2``, ``2 cov = (var_u - var_v) / 2``, and the
    same for the means, so v (the error, small) keeps its precision and identical images give
    exactly 1.  ``ws`` (N, 1, ...) is the validity mask's strip, whose blur weights each window.
    """
    import torch

    c1, c2 = K1**2, K2**2
    dtype = _ssim_dtype()
    xs = xs.to(dtype) / peak.to(dtype) - 0.5
    ys = ys.to(dtype) / peak.to(dtype) - 0.5
    u, v = xs + ys, xs - ys
    # One stacked blur for the four maps (no band-dependent split: any band count, one kernel).
    mu_u, mu_v, e_uu, e_vv = _blur(torch.stack([u, v, u * u, v * v]), taps).unbind(0)
    var_u, var_v = e_uu - mu_u * mu_u, e_vv - mu_v * mu_v
    cs_map = ((var_u - var_v) * 0.5 + c2) / ((var_u + var_v) * 0.5 + c2)
    lum_u = mu_u + 1.0  # (mu_x + 0.5) + (mu_y + 0.5)
    ssim_map = ((lum_u * lum_u - mu_v * mu_v) * 0.5 + c1) / ((lum_u * lum_u + mu_v * mu_v) * 0.5 + c1) * cs_map
    if ws is None:  # the caller counts the outputs (a size must not become a traced constant)
        return _map_sum(ssim_map), _map_sum(cs_map)
    weights = _blur(ws.to(dtype), taps)
    return _map_sum(ssim_map * weights), _map_sum(cs_map * weights), _map_sum(weights.expand_as(cs_map))


def _map_sum(t: "torch.Tensor") -> "torch.Tensor":
    """Float64 sum over the last two axes: rows summed in float32 (relative error ~1e-7), then float64.

    Cheaper than widening every element, and well inside the tested 1e-5.
    """
    import torch

    return t.sum(dim=3).sum(dim=2, dtype=torch.float64)


def _ssim_scale(x: "torch.Tensor", y: "torch.Tensor", mask: "torch.Tensor | None", peak: "torch.Tensor",
                taps: list[float]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Per image and band (N, S): (mean SSIM, mean contrast-structure) of one scale, in row strips.

    Strips of about :data:`SSIM_STRIP_ELEMENTS` outputs per band (inputs overlapping by the
    window) keep the moment maps cache-sized whatever the image size; they are views of the
    image, so nothing is copied, and the compiled kernel takes any shape.  The sums are float64
    and the same as over the full map.
    """
    import torch

    win, (n, bands) = len(taps), x.shape[:2]
    out_rows = x.shape[2] - win + 1
    step = max(1, SSIM_STRIP_ELEMENTS // max(1, n * x.shape[3]))  # rows per strip, whatever the bands
    kernel = _SSIM_STRIP if win == WIN_SIZE else _ssim_strip  # tiny-image windows stay eager
    sums = torch.zeros((3, n, bands), dtype=torch.float64, device=x.device)  # ssim, cs, weight
    for start in range(0, out_rows, step):
        stop = min(start + step, out_rows)
        rows = slice(start, stop + win - 1)
        parts = kernel(x[:, :, rows], y[:, :, rows], None if mask is None else mask[:, :, rows], peak, taps)
        sums[0] += parts[0]
        sums[1] += parts[1]
        sums[2] += parts[2] if mask is not None else float((stop - start) * (x.shape[3] - win + 1))
    # No valid pixel anywhere near: nothing to get wrong at this scale (1, the identity).
    empty = sums[2] <= 0
    safe = sums[2].clamp_min(torch.finfo(torch.float64).tiny)
    one = torch.ones_like(sums[0])
    return torch.where(empty, one, sums[0] / safe), torch.where(empty, one, sums[1] / safe)


def _ssim_ms_ssim(x: "torch.Tensor", y: "torch.Tensor", mask: "torch.Tensor | None", peak: "torch.Tensor",
                  scales: int, win: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """SSIM and MS-SSIM per image and band (N, S); x, y are (N, S, H, W) in data units."""
    import torch

    taps = _gaussian(win)
    weights = MS_SSIM_WEIGHTS[:scales] if scales > 1 else (1.0,)
    total = sum(weights)  # renormalises the weights when fewer than 5 scales fit
    ms = torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)
    ssim = ms
    for k in range(scales):
        # Each scale reuses the previous one's down-sampled maps (and mask): nothing is re-read.
        ssim_k, cs_k = _ssim_scale(x, y, mask, peak, taps)
        if k == 0:
            ssim = ssim_k
        # Wang 2003: contrast-structure at the finer scales, full SSIM at the coarsest;
        # negative means are clipped to 0 (as pytorch_msssim) so the power stays real.
        term = ssim_k if k == scales - 1 else cs_k
        ms = ms * torch.relu(term) ** (weights[k] / total)
        if k < scales - 1:
            x, y = _down(x), _down(y)
            mask = _down(mask) if mask is not None else None
    return ssim, ms  # per band: the mean over bands comes last (as pytorch_msssim)


def _pointwise_chunk(x: "torch.Tensor", y: "torch.Tensor", valid: "torch.Tensor | None",
                     sam_dtype: "torch.dtype") -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
    """(squared error per band (S,), max |error|, angle sum) of a band-planar (S, pixels) chunk.

    Differences of integer data up to 16 bits are exact in float32 and their squares are
    summed in float64, so PSNR does not depend on summation order.  ``valid`` (1, pixels)
    zeroes the angles of nodata pixels (their errors are already 0); zero padding adds nothing.
    """
    import torch

    diff = y - x
    d64 = diff.to(torch.float64)
    sq_err = (d64 * d64).sum(dim=1)
    max_err = diff.abs().amax().to(torch.float64)
    if x.shape[0] < 2:
        return sq_err, max_err, torch.zeros_like(max_err)
    angle = _spectral_angle(x.to(sam_dtype).unsqueeze(0), y.to(sam_dtype).unsqueeze(0))[0]
    angle = angle if valid is None else angle * valid[0]
    return sq_err, max_err, angle.sum(dtype=torch.float64)


def _pointwise(ref: np.ndarray, dec: np.ndarray, valid: "torch.Tensor | None", dev: "torch.device",
               sam_dtype: "torch.dtype") -> "tuple[torch.Tensor, torch.Tensor, torch.Tensor]":
    """(squared error (N, S), max |error| (N,), angle sum (N,)) of (N, H, W, S) images.

    Row strips of about :data:`POINTWISE_CHUNK` pixels are made band-planar, so memory stays
    bounded (the packaged kernel takes any length).
    """
    import torch

    n, h, w, s = ref.shape
    rows = max(1, POINTWISE_CHUNK // w)
    out = (torch.zeros((n, s), dtype=torch.float64, device=dev), torch.zeros(n, dtype=torch.float64, device=dev),
           torch.zeros(n, dtype=torch.float64, device=dev))
    for i in range(n):
        for start in range(0, h, rows):
            r = slice(start, start + rows)
            v = None if valid is None else valid[i:i + 1, :, r]
            x, y = _neutralise(_planar(ref[i:i + 1, r], dev), _planar(dec[i:i + 1, r], dev), v)
            sq, mx, ang = _POINTWISE_CHUNK(_flat(x), _flat(y), None if v is None else _flat(v), sam_dtype)
            out[0][i] += sq
            out[1][i] = torch.maximum(out[1][i], mx)
            out[2][i] += ang
    return out


def _flat(t: "torch.Tensor") -> "torch.Tensor":
    """(1, C, rows, W) -> contiguous (C, rows x W)."""
    return t[0].reshape(t.shape[1], -1).contiguous()


def _structural(ref: np.ndarray, dec: np.ndarray, valid: "torch.Tensor | None", dev: "torch.device",
                peaks: Sequence[float], scales: int, win: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """Per-image (SSIM, MS-SSIM): band groups of at most :data:`SSIM_GROUP_SAMPLES` samples at a time.

    Down-sampling needs whole bands; grouping bounds memory for large multiband scenes while an
    RGB photo goes through every kernel call in one piece.
    """
    import torch

    n, h, w, s = ref.shape
    mask = valid.to(torch.float32) if valid is not None else None
    peak = torch.tensor(list(peaks), dtype=torch.float32, device=dev).view(n, 1, 1, 1)
    group = max(1, SSIM_GROUP_SAMPLES // max(1, n * h * w))
    ssim = torch.zeros(n, dtype=torch.float64, device=dev)
    ms_ssim = torch.zeros(n, dtype=torch.float64, device=dev)
    for first in range(0, s, group):
        bands = slice(first, min(first + group, s))
        x, y = _neutralise(_planar(ref[..., bands], dev), _planar(dec[..., bands], dev), valid)
        part_ssim, part_ms = _ssim_ms_ssim(x, y, mask, peak, scales, win)
        ssim += part_ssim.sum(dim=1) / s
        ms_ssim += part_ms.sum(dim=1) / s
    return ssim, ms_ssim


def _planar(array: np.ndarray, dev: "torch.device") -> "torch.Tensor":
    """(N, H, W, S) stored samples -> (N, S, H, W) float tensor, in one strided conversion.

    float32 holds integers up to 16 bits exactly (and is what a GPU is fast at); wider integers
    and float data stay float64 on the CPU.
    """
    import torch

    if array.dtype.kind == "b":
        array = array.view(np.uint8)
    narrow = array.dtype.kind in "ui" and array.dtype.itemsize <= 2
    dtype = torch.float32 if narrow or _compute_dtype(dev) == torch.float32 else torch.float64
    if array.dtype.byteorder == ">" or array.dtype in (np.uint32, np.uint64):
        array = array.astype(np.float64)  # torch has no big-endian or wide unsigned arithmetic
    with warnings.catch_warnings():
        # Read-only arrays (decoder outputs, memory maps) are fine: the tensor is only read, then copied.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        source = torch.from_numpy(array)
    return source.to(dev).permute(0, 3, 1, 2).to(dtype, memory_format=torch.contiguous_format)


def _neutralise(x: "torch.Tensor", y: "torch.Tensor",
                valid: "torch.Tensor | None") -> "tuple[torch.Tensor, torch.Tensor]":
    """x, y with nodata pixels set to the reference's value in both (0 where it is NaN).

    So nodata carries no error into sums, maxima, angles or SSIM windows that straddle its edge.
    """
    import torch

    if valid is None:
        return x, y
    fill = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    return torch.where(valid, x, fill), torch.where(valid, y, fill)


def _metrics_stack(ref: np.ndarray, dec: np.ndarray, peaks: Sequence[float], rules: Sequence[str],
                   masks: np.ndarray | None, dev: "torch.device", structural: bool = True) -> list[Metrics]:
    """Metrics of N same-shape pairs stacked as (N, H, W, S) arrays, computed in one batch."""
    import torch

    n, h, w, s = ref.shape
    dtype = _compute_dtype(dev)
    scales, win, fallback = _ms_ssim_plan(h, w) if structural else (0, 0, NOT_COMPUTED)
    valid_t = torch.from_numpy(masks).to(dev).unsqueeze(1) if masks is not None else None
    valid_n = (torch.from_numpy(masks.reshape(n, -1).sum(axis=1)).to(dev, dtype) if masks is not None
               else torch.full((n,), float(h * w), dtype=dtype, device=dev))
    # 8-bit spectra: float32 angles are within 1e-5 relative (the smallest angle is ~1/255);
    # wider data keeps the pointwise dtype, for the tiny angles of 16 bits.
    sam_dtype = torch.float32 if ref.dtype.itemsize == 1 else dtype
    with torch.no_grad():
        sq_err, max_err, angle_sum = _pointwise(ref, dec, valid_t, dev, sam_dtype)
        sq_err, max_err, angle_sum = sq_err.to(dtype), max_err.to(dtype), angle_sum.to(dtype)
        if structural:
            ssim, ms_ssim = _structural(ref, dec, valid_t, dev, peaks, scales, win)
        else:
            ssim = ms_ssim = torch.full((n,), math.nan, dtype=torch.float64, device=dev)
        count = valid_n.clamp_min(1)
        sam = torch.rad2deg(angle_sum / count) if s > 1 else None
        mse_band = sq_err / count.unsqueeze(1)
        mse = sq_err.sum(dim=1) / (count * s)
    return _results(peaks, rules, n, mse, mse_band, max_err, ssim, ms_ssim, valid_n, sam,
                    (scales, fallback, win), masks is not None, dev)


def _results(peaks: Sequence[float], rules: Sequence[str], n: int, mse: "torch.Tensor",
             mse_band: "torch.Tensor", max_err: "torch.Tensor", ssim: "torch.Tensor",
             ms_ssim: "torch.Tensor", valid_n: "torch.Tensor", sam: "torch.Tensor | None",
             plan: tuple[int, str | None, int], masked: bool, dev: "torch.device") -> list[Metrics]:
    """One :class:`Metrics` per image, with one device->host transfer per quantity."""
    scales, fallback, win = plan
    mse_l, mse_band_l, max_l = mse.tolist(), mse_band.tolist(), max_err.tolist()
    ssim_l, ms_l, valid_l = ssim.tolist(), ms_ssim.tolist(), valid_n.tolist()
    sam_l = sam.tolist() if sam is not None else [None] * n
    return [
        Metrics(
            psnr=psnr_from_mse(mse_l[i], peaks[i]),
            ssim=float(ssim_l[i]),
            ms_ssim=float(ms_l[i]),
            max_abs_error=float(max_l[i]),
            psnr_per_band=[psnr_from_mse(m, peaks[i]) for m in mse_band_l[i]],
            sam=None if sam_l[i] is None else float(sam_l[i]),
            peak=float(peaks[i]),
            mse=float(mse_l[i]),
            ms_ssim_scales=scales,
            ms_ssim_fallback=fallback,
            ssim_window=win,
            valid_pixels=int(round(valid_l[i])),
            masked=masked,
            peak_rule=rules[i],
            device=dev.type,
        )
        for i in range(n)
    ]


def _spectral_angle(x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Per-pixel angle (radians) between band-planar spectra (N, bands, ...): 2 asin(|x^ - y^| / 2).

    The chord form stays accurate for tiny angles, where acos of a dot product near 1 does not.
    Planar bands keep every step on contiguous pixels (a reduction over a last axis of 3 or 4
    bands is several times slower).
    """
    import torch

    norm_x, norm_y = (x * x).sum(1).sqrt(), (y * y).sum(1).sqrt()
    zero = torch.zeros_like(norm_x)
    inv_x = torch.where(norm_x > 0, norm_x.reciprocal(), zero)
    inv_y = torch.where(norm_y > 0, norm_y.reciprocal(), zero)
    chord = x * inv_x.unsqueeze(1) - y * inv_y.unsqueeze(1)
    angle = (chord * chord).sum(1).sqrt().mul(0.5).clamp(max=1.0).asin().mul(2.0)
    # Exactly one zero vector: no direction to compare, 90 degrees by convention (both zero: 0).
    one_zero = (norm_x > 0) != (norm_y > 0)
    return torch.where(one_zero, torch.full_like(angle, math.pi / 2), angle)


#: Packaged (ahead-of-time) kernels for any image size: (images, bands, rows, columns) symbolic.
#: Rows and columns start at 12 (an 11-wide window needs one output) and stay below 2**18.
_STRIP = ("n", "s", "r", "w")
_SSIM_STRIP = CompiledTwin(_ssim_strip, shapes=Shapes(
    (_STRIP, _STRIP, ("n", 1, "r", "w"), ("n", 1, 1, 1), None),
    {"n": (1, 1 << 16), "s": (1, 1 << 16), "r": (12, (1 << 18) - 1), "w": (12, (1 << 18) - 1)}))
#: Spectral angles need 2 bands or more; one band runs eagerly (no angle).
_POINTWISE_CHUNK = CompiledTwin(_pointwise_chunk, shapes=Shapes(
    (("s", "l"), ("s", "l"), (1, "l"), None), {"s": (2, 1 << 16), "l": (2, (1 << 31) - 2)}))
_DOWN_EVEN = CompiledTwin(_down_even, shapes=Shapes(
    (("n", "c", "h", "w"),), {"n": (1, 1 << 16), "c": (1, 1 << 16), "h": (4, 1 << 20), "w": (4, 1 << 20)}))


#: (shape, dtype, nodata) of the images :func:`prepare_kernels` measures: 8- and 16-bit RGB, with
#: and without a nodata mask, which covers the kernel variants photos and most scenes use.
WARM_CASES = (((64, 64, 3), "uint8", None), ((64, 64, 3), "uint8", 0),
              ((64, 64, 3), "uint16", None), ((64, 64, 3), "uint16", 0))


def prepare_kernels(*, build: bool) -> list[dict[str, Any]]:
    """This machine's packaged metric kernels (name, bytes, path); ``build`` first builds the
    common variants (:data:`WARM_CASES`) that are missing (20-30 s of CPU each)."""
    from recodec.kernels import forced_mode, kernel_cache

    if build:
        rng = np.random.default_rng(0)
        with forced_mode("sync"):
            for shape, dtype, nodata in WARM_CASES:
                top = np.iinfo(dtype).max
                ref = rng.integers(1, top, shape).astype(dtype)
                compute_metrics(ref, np.clip(ref.astype(np.int64) + 1, 0, top).astype(dtype), nodata=nodata)
    folder = kernel_cache()
    files = sorted(folder.glob("*.pt2")) if folder.is_dir() else []
    return [{"name": f.stem, "bytes": f.stat().st_size, "path": str(f)} for f in files]


def psnr_from_mse(mse: float, peak: float) -> float:
    """PSNR in dB, ``10 log10(peak^2 / mse)``; +inf when mse is 0, NaN when mse is NaN."""
    if math.isnan(mse):
        return math.nan
    if mse <= 0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


def mse(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mean squared error over every sample, in float64 (NumPy; for codecs' own rate control)."""
    decoded = np.asarray(decoded).reshape(np.shape(reference))
    return float(np.mean((np.asarray(reference, np.float64) - decoded.astype(np.float64)) ** 2))


def psnr(reference: np.ndarray, decoded: np.ndarray, peak: float) -> float:
    """Whole-image PSNR against ``peak`` (NumPy, no mask): :func:`psnr_from_mse` of :func:`mse`."""
    return psnr_from_mse(mse(reference, decoded), peak)


def max_abs_error(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Largest |decoded - reference| over values that are not NaN in the reference (NumPy)."""
    reference = np.asarray(reference)
    diff = np.abs(np.asarray(decoded).astype(np.float64).reshape(reference.shape) - reference.astype(np.float64))
    if np.issubdtype(reference.dtype, np.floating):
        diff = diff[~np.isnan(reference)]
    return float(diff.max()) if diff.size else 0.0


def _prepare(reference: np.ndarray, decoded: np.ndarray, peak: float | None, bit_depth: int | None,
             nodata: float | None) -> tuple[np.ndarray, np.ndarray, float, str, np.ndarray | None]:
    ref, dec = _as_hwc(reference), _as_hwc(decoded)
    if ref.shape != dec.shape:
        raise ValueError(f"reference {ref.shape} and decoded {dec.shape} differ in shape")
    if ref.size == 0:
        raise ValueError(f"empty image of shape {ref.shape}")
    mask = valid_mask(ref, nodata)
    value, rule = resolve_peak(ref, peak=peak, bit_depth=bit_depth, mask=mask)
    return ref, dec, value, rule, mask


def compute_metrics(reference: np.ndarray, decoded: np.ndarray, *, peak: float | None = None,
                    bit_depth: int | None = None, nodata: float | None = None,
                    device: str | None = None, structural: bool = True) -> Metrics:
    """Compare two (H, W, S) arrays of the same shape (conventions in the module docstring).

    ``structural=False`` skips SSIM and MS-SSIM (most of the cost; both come back NaN with
    ``ms_ssim_fallback = "not_computed"``), for callers that only need PSNR / error bounds.
    """
    ref, dec, value, rule, mask = _prepare(reference, decoded, peak, bit_depth, nodata)
    return _metrics_stack(ref[None], dec[None], [value], [rule], None if mask is None else mask[None],
                          _pick_device(device), structural)[0]


def compute_metrics_batch(pairs: Sequence[tuple[np.ndarray, np.ndarray]], *, peak: float | None = None,
                          bit_depth: int | None = None, nodata: float | None = None,
                          device: str | None = None, structural: bool = True,
                          max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS) -> list[Metrics]:
    """:func:`compute_metrics` for many (reference, decoded) pairs, batching same-shape pairs.

    Results are in input order and equal the one-by-one results (same code path); the peak
    is resolved per pair.  On a GPU each batch holds at most ``max_batch_pixels`` pixels.
    """
    dev = _pick_device(device)
    prepared = [_prepare(r, d, peak, bit_depth, nodata) for r, d in pairs]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, (ref, dec, _, _, mask) in enumerate(prepared):
        groups.setdefault((ref.shape, mask is None), []).append(i)
    results: list[Metrics | None] = [None] * len(prepared)
    for (shape, no_mask), members in groups.items():
        per_batch = max(1, max_batch_pixels // (shape[0] * shape[1]))
        for start in range(0, len(members), per_batch):
            idx = members[start:start + per_batch]
            items = [prepared[i] for i in idx]
            ref = np.stack([it[0] for it in items])
            dec = np.stack([it[1] for it in items])
            masks = None if no_mask else np.stack([it[4] for it in items])
            batch = _metrics_stack(ref, dec, [it[2] for it in items], [it[3] for it in items], masks, dev,
                                   structural)
            for i, m in zip(idx, batch):
                results[i] = m
    return [m for m in results if m is not None]


__all__ = [
    "K1", "K2", "MS_SSIM_WEIGHTS", "Metrics", "WIN_SIGMA", "WIN_SIZE", "compute_metrics",
    "compute_metrics_batch", "finite_or_none", "max_abs_error", "mse", "prepare_kernels", "psnr", "psnr_from_mse",
    "resolve_peak",
    "valid_mask",
]
