"""Estimate: a sample coded by the real per-image pipeline, extrapolated with intervals that hold the truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from recodec.storage import SourceObject
from recodec.tasks.estimate import estimate, mean_interval, ratio_interval, reservoir
from tests.reliability.helpers import job_config, write_archive


def test_reservoir_is_uniform_and_counts_the_stream() -> None:
    objs = [SourceObject(f"k{i}", i, "e") for i in range(1000)]
    sample, n, nbytes = reservoir(iter(objs), 50, seed=1)
    assert n == 1000 and nbytes == sum(range(1000)) and len({o.key for o in sample}) == 50
    assert 300 < sum(o.size for o in sample) / 50 < 700  # not just the head of the stream


def test_intervals_shrink_to_the_truth_with_a_full_sample() -> None:
    saved, sizes = [10.0, 20.0, 0.0, 5.0], [40.0, 50.0, 30.0, 20.0]
    full = ratio_interval(saved, sizes, 140, population=4)
    assert full.low == full.high == pytest.approx(35.0)
    part = ratio_interval(saved[:3], sizes[:3], 140, population=4)
    assert part.low < part.estimate < part.high
    t = mean_interval([1.0, 3.0], population=10)
    assert t.estimate == 20.0 and t.low < 20 < t.high


def test_estimate_brackets_the_savings_of_a_full_run(src: Path, tmp_path: Path) -> None:
    write_archive(src, 16, sizes={i: (24 + 4 * (i % 5), 32) for i in range(16)})
    config = job_config(src, tmp_path / "unused", quality=60, allow_growth=False)
    truth = estimate(config, sample=16)  # everything: the exact figure, a zero-width interval
    exact = truth["saved_bytes"]
    assert exact["low"] == pytest.approx(exact["estimate"]) == pytest.approx(exact["high"])
    guess = estimate(config, sample=6, seed=3, report_config={"storage_class": "STANDARD"})
    s = guess["saved_bytes"]
    assert guess["sample_images"] == 6 and guess["population_images"] == 16
    assert s["low"] <= exact["estimate"] <= s["high"] and s["low"] < s["high"]
    assert guess["saved_usd_per_month"]["estimate"] == pytest.approx(s["estimate"] / 1e9 * 0.023)
    assert guess["compute_seconds_one_process"]["estimate"] > 0
    assert not (tmp_path / "unused").exists()  # nothing written anywhere but a temp folder
