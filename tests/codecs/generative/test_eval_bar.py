"""The bar verdict of benchmarks/generative_eval.py (issue #18) at the lowest two rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmark_scripts import load_benchmark

EVAL = load_benchmark("generative_eval")


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

    cand = load_candidates()
    rng = np.random.default_rng(0)
    texture = np.clip(128 + 20 * rng.standard_normal((128, 128, 3)), 0, 255).astype(np.uint8)
    specks = np.full((128, 128, 3), 128, np.uint8)
    specks[::8, ::8] = 255
    assert abs(cand.sparsity(texture) - 2 / np.pi) < 0.1
    assert cand.sparsity(specks) < 0.3


def load_candidates():
    """benchmarks/generative_candidates.py as a module."""
    return load_benchmark("generative_candidates")


def test_candidate_decodes_are_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    """--decodes keeps each crop's MSE decode; a second run reads it back instead of coding again,
    and a changed crop or quality is coded afresh."""
    import numpy as np

    from recodec.codecs.generative.codecs import TrainedOnHyperprior

    cand = load_candidates()
    rng = np.random.default_rng(0)
    crops = {"photo": [("a@0,0", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))],
             "naip": [("n@1,2", rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))]}
    monkeypatch.setattr(cand, "load_sets", lambda *a: {"photo": crops["photo"]})
    monkeypatch.setattr(cand, "scene_sets", lambda: {"naip": crops["naip"]})
    cache = tmp_path / "q1.npz"
    first = cand.decoded_crops(1, cache)
    coded: list[int] = []
    encode = TrainedOnHyperprior.encode
    monkeypatch.setattr(TrainedOnHyperprior, "encode",
                        lambda self, img, **kw: coded.append(1) or encode(self, img, **kw))
    second = cand.decoded_crops(1, cache)
    assert list(second) == ["photo", "naip"] and coded == []
    for k in first:
        (n1, i1, p1, b1), (n2, i2, p2, b2) = first[k][0], second[k][0]
        assert n1 == n2 and b1 == b2 > 0 and np.array_equal(i1, i2) and np.array_equal(p1, p2)
    crops["naip"] = [("n@1,2", 255 - crops["naip"][0][1])]
    cand.decoded_crops(1, cache)
    assert coded == [1]  # the changed crop only
    cand.decoded_crops(2, cache)
    assert coded == [1, 1, 1]  # another quality: both


def test_candidate_row_pools_the_heldout_satellite_sets() -> None:
    """The pooled column is the geometric mean over every held-out satellite crop, not of the set means."""
    import numpy as np

    cand = load_candidates()
    sets = {"photo": [1.0, 1.0], "satellite": [0.5], "naip": [2.0, 2.0, 2.0], "landsat8-rgb16": [1.0]}
    r = {k: {"fine": v, "gap": -1.0} for k, v in sets.items()}
    r["landsat8"] = {"fine": [1.9], "gap": -1.5, "sparsity": [(0.45, 0.35)]}
    row = cand.row("g", r)
    pooled = np.exp(np.mean(np.log([0.5, 2.0, 2.0, 2.0, 1.0])))
    assert f"| {pooled:.2f}; {np.log([0.5, 2, 2, 2, 1]).std():.2f} |" in row


def test_grid_excess_sees_sharpened_block_edges() -> None:
    """Detail added on the 16 px grid lines reads well above 1; detail added everywhere reads about 1."""
    import numpy as np

    cand = load_candidates()
    rng = np.random.default_rng(1)
    plain = np.full((128, 128, 3), 120, np.uint8)
    everywhere = np.clip(120 + 10 * rng.standard_normal((128, 128, 3)), 0, 255).astype(np.uint8)
    edges = plain.copy()
    edges[::16] = 160
    edges[:, ::16] = 160
    assert 0.8 < cand.grid_excess(plain, everywhere) < 1.25
    assert cand.grid_excess(plain, edges) > 3


def test_train_ratio_subsets_split_photo_and_scene_crops() -> None:
    """generative_train_ratio.py --subset: the scene flag of a --scenes bank picks the crops and their decodes."""
    import numpy as np

    mod = load_benchmark("generative_train_ratio")
    bank = np.arange(3)[:, None, None, None] * np.ones((3, 4, 4, 3), np.uint8)
    arrays = {"bank": bank, "recon": np.stack([bank, bank + 1]), "scene": np.array([False, True, True]),
              "qualities": np.array([1, 2])}
    scenes, photos = mod.subset(arrays, "scenes"), mod.subset(arrays, "photos")
    assert scenes["bank"][:, 0, 0, 0].tolist() == [1, 2] and scenes["recon"].shape == (2, 2, 4, 4, 3)
    assert photos["bank"][:, 0, 0, 0].tolist() == [0] and "scene" not in photos
    assert mod.subset(arrays, "all") is arrays and list(scenes["qualities"]) == [1, 2]


def test_low_rate_views_decode_the_gan_codecs_file_with_and_without_its_record() -> None:
    """The GAN rows decode the hyperprior-gan file (bpp counts its texture record); the `no hint` row the plain one."""
    pytest.importorskip("torch")
    from tests.codecs.photos import chelsea_crop

    from recodec.codecs.generative import texture

    img = chelsea_crop(100, 120, 64, 96)
    views = EVAL.low_rate_views(img, [1], (1.0,), ())
    assert {"q1 mse", "q1 gan r=1", "q1 gan r=1 no hint"} <= set(views)
    assert views["q1 gan r=1"][1] == views["q1 mse"][1] + 5 + len(texture.encode_hint(img))
    assert views["q1 gan r=1 no hint"][1] == views["q1 mse"][1]
    assert not (views["q1 gan r=1"][0] == views["q1 gan r=1 no hint"][0]).all()
