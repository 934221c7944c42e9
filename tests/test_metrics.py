"""Tests of recodec.metrics: known values, conventions, fallbacks, masking, batching, devices."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from recodec.metrics import (
    Metrics,
    compute_metrics,
    compute_metrics_batch,
    finite_or_none,
    psnr_from_mse,
    resolve_peak,
)

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    # These images are small: OpenMP threads only add spin-waiting on shared, busy cores
    # (measured 8x slower under load).  Restored afterwards so other modules are unaffected.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _noisy(ref: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    info = np.iinfo(ref.dtype)
    noise = _rng(seed).normal(0.0, sigma, ref.shape)
    return np.clip(np.rint(ref + noise), info.min, info.max).astype(ref.dtype)


def _smooth_image(shape: tuple[int, int, int], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """Structured (not white-noise) content, so SSIM behaves as on real images."""
    h, w, s = shape
    yy, xx = np.mgrid[0:h, 0:w]
    peak = np.iinfo(dtype).max
    bands = [
        0.5 + 0.25 * np.sin(xx / (7.0 + 3 * b)) * np.cos(yy / (5.0 + 2 * b)) + 0.1 * _rng(seed + b).random((h, w))
        for b in range(s)
    ]
    return np.clip(np.stack(bands, axis=2) * peak, 0, peak).astype(dtype)


def test_import_does_not_load_torch() -> None:
    code = "import sys, recodec.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_constant_offset_psnr_by_hand() -> None:
    ref = _rng().integers(0, 200, (40, 50, 3)).astype(np.uint8)
    m = compute_metrics(ref, ref + 5)
    # MSE = 25 exactly, so PSNR = 10 log10(255^2 / 25) = 20 log10(51).
    assert m.mse == pytest.approx(25.0)
    assert m.psnr == pytest.approx(20 * math.log10(51), abs=1e-9)
    assert m.psnr_per_band == pytest.approx([20 * math.log10(51)] * 3, abs=1e-9)
    assert m.max_abs_error == 5.0
    assert m.peak == 255.0 and m.peak_rule == "dtype"


def test_per_band_psnr() -> None:
    ref = _rng().integers(0, 200, (16, 16, 2)).astype(np.uint8)
    dec = ref.copy()
    dec[..., 1] += 2
    m = compute_metrics(ref, dec)
    assert m.psnr_per_band[0] == math.inf
    assert m.psnr_per_band[1] == pytest.approx(10 * math.log10(255**2 / 4))
    assert m.psnr == pytest.approx(10 * math.log10(255**2 / 2))  # MSE over both bands = 2


def test_identical_images() -> None:
    ref = _smooth_image((64, 64, 3))
    m = compute_metrics(ref, ref)
    assert m.psnr == math.inf and m.mse == 0.0
    assert m.ssim == pytest.approx(1.0, abs=1e-12)
    assert m.ms_ssim == pytest.approx(1.0, abs=1e-12)
    assert m.sam == 0.0 and m.max_abs_error == 0.0
    assert finite_or_none(m.psnr) is None and finite_or_none(3.0) == 3.0


def test_peak_rules() -> None:
    u16 = np.zeros((4, 4, 1), np.uint16)
    assert resolve_peak(u16) == (65535.0, "dtype")  # constant: the container's range
    assert resolve_peak(np.zeros((4, 4, 1), np.int16)) == (65535.0, "dtype")
    assert resolve_peak(np.array([[[100], [1900]]], np.uint16)) == (1800.0, "data_range")
    assert resolve_peak(np.zeros((4, 4, 1), np.uint8)) == (255.0, "dtype")
    assert resolve_peak(u16, bit_depth=12) == (4095.0, "bit_depth")
    assert resolve_peak(u16, peak=1000.0, bit_depth=12) == (1000.0, "explicit")
    floats = np.array([[-1.0, 3.0]], np.float32)[:, :, None]
    assert resolve_peak(floats) == (4.0, "data_range")
    assert resolve_peak(np.full((2, 2, 1), 7.0, np.float32)) == (1.0, "data_range")
    with pytest.raises(ValueError):
        resolve_peak(u16, peak=0)


def test_uint16_peak_in_psnr() -> None:
    ref = _rng().integers(0, 60000, (32, 32, 2)).astype(np.uint16)
    dec = ref + 10
    span = float(ref.max() - ref.min())
    m = compute_metrics(ref, dec)
    assert (m.peak, m.peak_rule) == (span, "data_range")
    assert m.psnr == pytest.approx(20 * math.log10(span / 10))
    # A 16-bit header is the container, not the sensor: still the data range.
    assert compute_metrics(ref, dec, bit_depth=16).peak_rule == "data_range"
    assert compute_metrics(ref, dec, bit_depth=12).psnr == pytest.approx(20 * math.log10(4095 / 10))
    assert compute_metrics(ref, dec, peak=100).psnr == pytest.approx(20.0)


def test_sensor_values_in_a_16_bit_container_get_their_own_range() -> None:
    # Regression (#9 item 8): an 11-bit pan scene (max 1,848) scored against 65,535 looked
    # 30 dB better than it was.
    ref = (_smooth_image((64, 64, 1), dtype=np.uint16).astype(np.float64) / 65535 * 1848).astype(np.uint16)
    dec = np.clip(ref.astype(np.int64) + _rng().integers(-250, 251, ref.shape), 0, 65535).astype(np.uint16)
    m = compute_metrics(ref, dec, bit_depth=16)
    assert m.peak == float(ref.max() - ref.min()) and m.peak < 1849
    assert m.psnr < compute_metrics(ref, dec, peak=65535).psnr - 25
    masked = compute_metrics(ref, dec, nodata=float(ref.max()))
    assert masked.peak < m.peak  # the range of the valid pixels only


def test_float_data() -> None:
    ref = _rng().random((30, 30, 2)).astype(np.float32) * 4 - 2
    dec = ref + np.float32(0.01)
    m = compute_metrics(ref, dec)
    assert m.peak_rule == "data_range" and m.peak == pytest.approx(float(ref.max() - ref.min()))
    assert m.psnr == pytest.approx(20 * math.log10(m.peak / 0.01), abs=1e-3)


def test_monotonic_with_noise_and_bounded() -> None:
    ref = _smooth_image((96, 96, 3))
    results = [compute_metrics(ref, _noisy(ref, sigma)) for sigma in (1, 3, 8, 20)]
    for better, worse in zip(results, results[1:]):
        assert better.psnr > worse.psnr
        assert better.ssim > worse.ssim
        assert better.ms_ssim > worse.ms_ssim
        assert better.sam < worse.sam
        assert better.max_abs_error <= worse.max_abs_error
    assert all(0 < m.ms_ssim <= 1 and m.ssim <= 1 for m in results)


@pytest.mark.parametrize("shape", [(64, 80, 3), (48, 48, 1), (33, 47, 2)])
def test_ssim_matches_pytorch_msssim(shape: tuple[int, int, int]) -> None:
    pm = pytest.importorskip("pytorch_msssim")
    ref = _smooth_image(shape, seed=shape[0])
    dec = _noisy(ref, 6)

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]

    expected = pm.ssim(t(ref), t(dec), data_range=255, size_average=True).item()
    assert compute_metrics(ref, dec).ssim == pytest.approx(expected, abs=1e-6)


def test_ms_ssim_matches_pytorch_msssim_on_even_sizes() -> None:
    # pytorch_msssim zero-pads odd sizes before down-sampling; on sizes that stay even over the
    # 5 scales (192 -> 96 -> 48 -> 24 -> 12) both implementations are the same MS-SSIM.
    pm = pytest.importorskip("pytorch_msssim")
    ref = _smooth_image((192, 192, 2), dtype=np.uint16)
    dec = _noisy(ref, 3000)

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]

    m = compute_metrics(ref, dec)
    expected = pm.ms_ssim(t(ref), t(dec), data_range=m.peak).item()  # the peak is the data range
    assert m.ms_ssim_scales == 5 and m.ms_ssim_fallback is None
    assert m.ms_ssim == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    ("shape", "scales", "fallback", "window"),
    [
        ((1, 1, 1), 1, "single_scale_window_1", 1),
        ((3, 3, 2), 1, "single_scale_window_3", 3),
        ((2, 9, 3), 1, "single_scale_window_1", 1),
        ((10, 300, 1), 1, "single_scale_window_9", 9),
        ((11, 11, 1), 1, "1_scales", 11),
        ((50, 60, 1), 3, "3_scales", 11),
        ((160, 170, 1), 4, "4_scales", 11),
        ((161, 161, 1), 5, None, 11),
    ],
)
def test_small_images_fall_back(shape: tuple[int, int, int], scales: int, fallback: str | None,
                                window: int) -> None:
    ref = _rng().integers(0, 255, shape).astype(np.uint8)
    dec = _noisy(ref, 4)
    m = compute_metrics(ref, dec)
    assert (m.ms_ssim_scales, m.ms_ssim_fallback, m.ssim_window) == (scales, fallback, window)
    assert math.isfinite(m.ssim) and math.isfinite(m.ms_ssim) and m.ms_ssim <= 1
    same = compute_metrics(ref, ref)
    assert same.ssim == pytest.approx(1.0) and same.ms_ssim == pytest.approx(1.0)


def test_sam_known_angles() -> None:
    ref = np.array([[[1, 0], [1, 0], [0, 0], [0, 0], [3, 4]]], np.uint8)
    dec = np.array([[[0, 1], [1, 1], [0, 0], [2, 0], [6, 8]]], np.uint8)
    # per pixel: 90 (orthogonal), 45, 0 (both zero), 90 (one zero, by convention), 0 (parallel)
    assert compute_metrics(ref, dec).sam == pytest.approx((90 + 45 + 0 + 90 + 0) / 5)
    assert compute_metrics(ref[..., :1], dec[..., :1]).sam is None


def test_sam_tiny_angles_are_accurate() -> None:
    ref = np.full((4, 4, 2), 60000, np.uint16)
    dec = ref.copy()
    dec[..., 1] -= 1
    expected = math.degrees(math.atan2(60000, 59999) - math.pi / 4)
    assert compute_metrics(ref, dec).sam == pytest.approx(expected, rel=1e-6)


def test_nodata_masking() -> None:
    ref = _smooth_image((80, 80, 3))
    ref[ref == 0] = 1
    ref[:, :20] = 0  # nodata collar
    dec = _noisy(ref, 2)
    dec[:, :20] = 255  # garbage where there is no data
    plain = compute_metrics(ref, dec)
    masked = compute_metrics(ref, dec, nodata=0)
    assert masked.masked and not plain.masked
    assert masked.valid_pixels == 80 * 60 and plain.valid_pixels == 80 * 80
    assert masked.psnr > plain.psnr + 10
    assert masked.ssim > plain.ssim and masked.ms_ssim > plain.ms_ssim
    assert masked.sam < plain.sam
    assert masked.max_abs_error < 255 == plain.max_abs_error
    # masked metrics equal those of the valid region alone (PSNR, max error, SAM are pointwise)
    alone = compute_metrics(ref[:, 20:], dec[:, 20:])
    assert masked.psnr == pytest.approx(alone.psnr)
    assert masked.sam == pytest.approx(alone.sam)
    assert masked.max_abs_error == alone.max_abs_error


def test_nodata_partial_bands_and_nan() -> None:
    ref = _rng().random((20, 20, 2)).astype(np.float32)
    ref[:5, :, :] = np.nan
    ref[5, :, 0] = np.nan  # one band only: still valid
    dec = ref + np.float32(0.001)
    m = compute_metrics(ref, np.nan_to_num(dec, nan=7.0), nodata=float("nan"))
    assert m.valid_pixels == 15 * 20
    assert math.isnan(m.psnr)  # NaN inside valid pixels (row 5, band 0) propagates, as documented
    full = np.where(np.isnan(ref), 0, ref).astype(np.float32)
    full[:5] = np.nan
    m2 = compute_metrics(full, np.nan_to_num(full + np.float32(0.001), nan=7.0), nodata=float("nan"))
    assert math.isfinite(m2.psnr) and math.isfinite(m2.ssim) and math.isfinite(m2.sam)
    assert m2.max_abs_error == pytest.approx(0.001, rel=1e-3)


def test_all_nodata_counts_as_exact() -> None:
    ref = np.zeros((12, 12, 2), np.uint16)
    m = compute_metrics(ref, ref + 100, nodata=0)
    assert m.valid_pixels == 0 and m.psnr == math.inf and m.max_abs_error == 0
    assert m.ssim == 1.0 and m.ms_ssim == 1.0


def test_structural_false_skips_ssim_only() -> None:
    ref = _smooth_image((40, 40, 2))
    dec = _noisy(ref, 3)
    full, fast = compute_metrics(ref, dec), compute_metrics(ref, dec, structural=False)
    assert math.isnan(fast.ssim) and math.isnan(fast.ms_ssim) and fast.ms_ssim_fallback == "not_computed"
    assert (fast.psnr, fast.max_abs_error, fast.sam) == (full.psnr, full.max_abs_error, full.sam)


def test_two_dimensional_input_and_shape_mismatch() -> None:
    ref = _rng().integers(0, 255, (20, 20)).astype(np.uint8)
    assert compute_metrics(ref, ref).psnr_per_band == [math.inf]
    with pytest.raises(ValueError):
        compute_metrics(ref, ref[:10])


def _same(a: Metrics, b: Metrics, tol: float = 1e-9) -> None:
    assert a.psnr == pytest.approx(b.psnr, abs=tol) or (a.psnr == b.psnr == math.inf)
    assert a.ssim == pytest.approx(b.ssim, abs=tol)
    assert a.ms_ssim == pytest.approx(b.ms_ssim, abs=tol)
    assert a.max_abs_error == pytest.approx(b.max_abs_error, abs=tol)
    assert (a.sam is None) == (b.sam is None)
    if a.sam is not None:
        assert a.sam == pytest.approx(b.sam, abs=max(tol, 1e-6))
    assert a.peak == b.peak and a.ms_ssim_fallback == b.ms_ssim_fallback


def test_batch_equals_one_by_one() -> None:
    ref8 = _smooth_image((40, 48, 3))
    ref16 = _smooth_image((40, 48, 3), dtype=np.uint16, seed=3)
    small = _rng().integers(0, 255, (5, 7, 1)).astype(np.uint8)
    pairs = [
        (ref8, _noisy(ref8, 3)),
        (ref16, _noisy(ref16, 500)),   # same shape, other dtype and peak: same batch
        (small, _noisy(small, 9)),
        (ref8, ref8),
    ]
    batch = compute_metrics_batch(pairs, max_batch_pixels=40 * 48 * 2)  # forces 2 chunks
    assert len(batch) == len(pairs)
    for (ref, dec), got in zip(pairs, batch):
        _same(got, compute_metrics(ref, dec))
    masked = compute_metrics_batch(pairs[:2], nodata=0)
    _same(masked[1], compute_metrics(*pairs[1], nodata=0))


def test_strips_and_chunks_do_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import recodec.metrics as metrics

    ref = _smooth_image((70, 90, 3), dtype=np.uint16)
    ref[:10] = 0
    dec = _noisy(ref, 400)
    monkeypatch.setattr(metrics, "SSIM_STRIP_ELEMENTS", 1 << 20)  # one strip per scale
    monkeypatch.setattr(metrics, "POINTWISE_CHUNK", 1 << 20)
    whole = [compute_metrics(ref, dec), compute_metrics(ref, dec, nodata=0)]
    monkeypatch.setattr(metrics, "SSIM_STRIP_ELEMENTS", 7 * 90)  # strips of 7 rows, then a short one
    monkeypatch.setattr(metrics, "POINTWISE_CHUNK", 700)
    monkeypatch.setattr(metrics, "SSIM_GROUP_SAMPLES", 2 * 70 * 90)  # bands in groups of 2, then 1
    strips = [compute_metrics(ref, dec), compute_metrics(ref, dec, nodata=0)]
    for a, b in zip(whole, strips):
        _same(a, b, tol=1e-7)  # float32 row sums: other strip heights round differently


def test_cuda_request_falls_back_to_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA present: nothing to fall back from")
    ref = _rng().integers(0, 255, (16, 16, 1)).astype(np.uint8)
    assert compute_metrics(ref, ref, device="cuda").device == "cpu"


def _gpu_like_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for i, dtype in enumerate((np.uint8, np.uint16)):
        ref = _smooth_image((200, 190, 4), dtype=dtype, seed=i)
        pairs.append((ref, _noisy(ref, 2.0 if dtype == np.uint8 else 300.0)))
    ref = _smooth_image((200, 190, 4), dtype=np.uint16, seed=7)
    pairs.append((ref, ref + 1))  # near-lossless: tiny errors, the float32 stress case
    return pairs


def _agree(cpu: list[Metrics], gpu: list[Metrics]) -> None:
    for c, g in zip(cpu, gpu):
        assert g.psnr == pytest.approx(c.psnr, abs=1e-3)
        assert g.ssim == pytest.approx(c.ssim, abs=1e-5)
        assert g.ms_ssim == pytest.approx(c.ms_ssim, abs=1e-5)
        assert g.max_abs_error == c.max_abs_error
        assert g.sam == pytest.approx(c.sam, rel=1e-3, abs=1e-5)


def test_float32_path_agrees_with_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    # The GPU computes in float32: run that arithmetic on the CPU so the tolerance is checked
    # on every machine, not only where CUDA exists.
    import recodec.metrics as metrics

    pairs = _gpu_like_pairs()
    reference = compute_metrics_batch(pairs, device="cpu")
    monkeypatch.setattr(metrics, "_compute_dtype", lambda dev: torch.float32)
    _agree(reference, compute_metrics_batch(pairs, device="cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_agree() -> None:
    pairs = _gpu_like_pairs()
    gpu = compute_metrics_batch(pairs, device="cuda")
    assert all(g.device == "cuda" for g in gpu)
    _agree(compute_metrics_batch(pairs, device="cpu"), gpu)


def test_psnr_from_mse() -> None:
    assert psnr_from_mse(0.0, 255) == math.inf
    assert math.isnan(psnr_from_mse(math.nan, 255))
    assert psnr_from_mse(1.0, 10.0) == pytest.approx(20.0)


@pytest.mark.parametrize(("dtype", "sigma"), [(np.uint8, 4.0), (np.uint16, 800.0), (np.uint16, 1.0)])
def test_float32_ssim_maps_match_a_float64_reference(monkeypatch: pytest.MonkeyPatch, dtype: type,
                                                     sigma: float) -> None:
    import recodec.metrics as metrics

    ref = _smooth_image((200, 230, 3), dtype=dtype, seed=5)
    dec = _noisy(ref, sigma)
    fast = compute_metrics(ref, dec)
    monkeypatch.setattr(metrics, "_ssim_dtype", lambda: torch.float64)
    monkeypatch.setattr(metrics, "_compute_dtype", lambda dev: torch.float64)
    exact = compute_metrics(ref, dec)
    assert abs(fast.psnr - exact.psnr) < 0.01
    assert abs(fast.ssim - exact.ssim) < 1e-5 and abs(fast.ms_ssim - exact.ms_ssim) < 1e-5


def test_ssim_on_a_real_photo_matches_pytorch_msssim() -> None:
    from pathlib import Path

    pm = pytest.importorskip("pytorch_msssim")
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset" / "photo_chelsea.png"
    if not path.exists():
        pytest.skip("devset photo not available")
    from PIL import Image

    ref = np.asarray(Image.open(path).convert("RGB"))[:192, :256].copy()
    dec = _noisy(ref, 5.0)

    def t(a: np.ndarray) -> "torch.Tensor":
        return torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1)[None]

    m = compute_metrics(ref, dec)
    assert m.ssim == pytest.approx(pm.ssim(t(ref), t(dec), data_range=255).item(), abs=1e-4)
    assert m.ms_ssim == pytest.approx(pm.ms_ssim(t(ref), t(dec), data_range=255).item(), abs=1e-4)
