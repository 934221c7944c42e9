"""The bar verdict of benchmarks/generative_eval.py (issue #18) at the lowest two rates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "generative_eval", Path(__file__).resolve().parents[3] / "benchmarks" / "generative_eval.py")
EVAL = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(EVAL)


def _row(psnr: float, fine: float, mid: float, coarse: float = 1.0) -> dict[str, float]:
    """A summary entry whose geometric means and medians equal its means (one image)."""
    hf = {"hf_fine": fine, "hf_mid": mid, "hf_coarse": coarse}
    return {"bpp": 0.1, "psnr": psnr, "ms_ssim": 0.9, **hf, **{f"{k}_geo": v for k, v in hf.items()},
            **{f"{k}_median": v for k, v in hf.items()}}


def test_bar_checks_every_blurred_band_and_the_psnr_gap() -> None:
    summary = {
        "photo | q1 mse": _row(23.0, 0.12, 0.46), "photo | q1 gan r=1": _row(21.5, 0.9, 0.79),
        "photo | q2 mse": _row(24.0, 0.2, 0.75), "photo | q2 gan r=1": _row(22.5, 1.1, 1.4),
        "photo | q3 mse": _row(25.0, 0.3, 0.8), "photo | q3 gan r=1": _row(22.9, 1.0, 1.0),
    }
    q1, q2, q3 = EVAL.bar(summary, "photo", [1, 2, 3])
    # q1: mid is blurred too and the GAN's mid (0.79) misses the window.
    assert q1["blurred_bands"] == ["fine", "mid"] and not q1["hf_ok"] and q1["psnr_ok"] and not q1["met"]
    # q2: only the fine band is blurred, so the GAN's mid at 1.4 does not count.
    assert q2["blurred_bands"] == ["fine"] and q2["met"]
    # q3: HF fine, but 2.1 dB below the MSE decoder.
    assert q3["hf_ok"] and not q3["psnr_ok"] and not q3["met"]


def test_scene_crops_leave_out_nodata_corners() -> None:
    """A scene whose corners are nodata keeps only the crops that are image (else its centre)."""
    import numpy as np

    scene = np.full((300, 300, 3), 90, np.uint8)
    scene[:150, :150] = 0  # the top-left quarter is nodata
    kept = dict(EVAL.scene_crops(scene, 100, 2))
    assert sorted(kept) == ["@0,200", "@200,0", "@200,200"]
    assert all((c.max(axis=2) > 0).all() for c in kept.values())
    empty = np.zeros((300, 300, 3), np.uint8)
    assert [pos for pos, _ in EVAL.scene_crops(empty, 100, 2)] == ["@100,100"]


def test_spread_names_the_outlier_and_the_mean_without_it() -> None:
    rows = [{"set": "photo", "setting": "q1 gan r=1", "image": name, "hf_fine": v}
            for name, v in (("a", 0.7), ("b", 0.8), ("c", 3.9))]
    text = EVAL.spread({"bar_lowest_two": [{"set": "photo", "quality": 1}], "rows": rows})
    assert text.splitlines()[0] == ("photo q1: per-image fine ratio geometric mean 1.30, mean 1.80, median 0.80, "
                                    "range 0.70-3.90 (c); mean without it 0.75")
    assert text.splitlines()[1].startswith("  16-image sets drawn from these in the window: mean ")


def test_in_window_share_counts_passing_sets() -> None:
    assert EVAL.in_window_share([1.0] * 5) == {"mean": 1.0, "geometric mean": 1.0, "median": 1.0}
    assert EVAL.in_window_share([0.5, 3.0], draws=200)["mean"] < 0.2  # a set mean of 0.5s and 3.0s is mostly over 1.25
    skewed = EVAL.in_window_share([1.0] * 15 + [12.0], draws=400)
    assert skewed["median"] == 1.0 and skewed["mean"] < skewed["geometric mean"]


def test_the_bar_averages_ratios_geometrically() -> None:
    """One near-flat image at 9x lifts a mean of 16 ratios out of the window, not their geometric mean."""
    import numpy as np

    pairs = [(0.2, 0.9), (0.3, 1.1)] * 7 + [(0.25, 1.0), (0.5, 9.0)]
    rows = []
    for image, (mse, gan) in enumerate(pairs):
        for setting, fine, psnr in (("q1 mse", mse, 25.0), ("q1 gan r=1", gan, 24.0)):
            rows.append({"set": "photo", "setting": setting, "image": str(image), "bpp": 0.1, "psnr": psnr,
                         "ms_ssim": 0.9, "hf_fine": fine, "hf_mid": 1.0, "hf_coarse": 1.0})
    summary = EVAL.summarise(rows)
    gan = summary["photo | q1 gan r=1"]
    assert np.isclose(gan["hf_fine"], 1.5) and np.isclose(gan["hf_fine_median"], 1.05)
    assert np.isclose(gan["hf_fine_geo"], np.exp(np.mean(np.log([g for _, g in pairs]))))
    (row,) = EVAL.bar(summary, "photo", [1])
    assert row["blurred_bands"] == ["fine"] and row["met"] and np.isclose(row["gan_hf_mean"]["fine"], 1.5)
    EVAL.add_intervals([row], rows)
    lo, hi = row["gan_hf_interval"]["fine"]
    assert 0.9 <= lo < row["gan_hf"]["fine"] < hi <= 9.0


def test_log_ratios_drop_flat_originals_and_floor_zero() -> None:
    import numpy as np

    assert np.allclose(EVAL.log_ratios([1.0, float("nan"), 0.0]), [0.0, np.log(1e-6)])


def test_grid_crops_do_not_repeat_pixels_along_short_sides() -> None:
    import numpy as np

    a = np.zeros((300, 600, 3), np.uint8)
    assert [pos for pos, _ in EVAL.grid_crops(a, 256, 2)] == ["@22,0", "@22,344"]
    assert [pos for pos, _ in EVAL.grid_crops(np.zeros((512, 512, 3), np.uint8), 256, 2)] == [
        "@0,0", "@0,256", "@256,0", "@256,256"]
    assert [pos for pos, _ in EVAL.grid_crops(a, 256, 1)] == ["@22,172"]


def test_candidate_sparsity_tells_specks_from_gaussian_detail() -> None:
    """The Landsat 8 column of generative_candidates.py: 2/pi for Gaussian detail, far less for specks."""
    import numpy as np

    spec = importlib.util.spec_from_file_location(
        "generative_candidates", Path(__file__).resolve().parents[3] / "benchmarks" / "generative_candidates.py")
    cand = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cand)
    rng = np.random.default_rng(0)
    texture = np.clip(128 + 20 * rng.standard_normal((128, 128, 3)), 0, 255).astype(np.uint8)
    specks = np.full((128, 128, 3), 128, np.uint8)
    specks[::8, ::8] = 255
    assert abs(cand.sparsity(texture) - 2 / np.pi) < 0.1
    assert cand.sparsity(specks) < 0.3
