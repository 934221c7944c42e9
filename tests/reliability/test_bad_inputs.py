"""Corrupt, truncated, fuzzed, hostile and non-image inputs: one failed row each, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recodec.tasks.shard import ShardContext
from tests.conftest import REPO, SHARED_DATA
from tests.reliability.faults import (
    EPS_BYTES,
    PDF_BYTES,
    bitflip_variants,
    png_bomb,
    png_bytes,
    truncation_variants,
)
from tests.reliability.helpers import (
    INPUT_REASONS,
    assert_audit_clean,
    assert_one_row_each,
    commit,
    job_config,
    prepare_shards,
    reason,
    rows_of,
)

#: PngSuite's deliberately broken files (x*.png); the shared copy, else the one in tests/data.
PNGSUITE = next((p for p in (SHARED_DATA / "badinput" / "pngsuite", REPO / "tests" / "data" / "pngsuite")
                 if any(p.glob("x*.png"))), None)


def hostile_corpus() -> dict[str, bytes]:
    """Key -> bytes of every bad input: PngSuite x*, 60 fuzzed PNGs, a bomb, renamed EPS/PDF, garbage."""
    valid = png_bytes(7)
    corpus = {f"pngsuite/{p.name}": p.read_bytes() for p in sorted(PNGSUITE.glob("x*.png"))} if PNGSUITE else {}
    corpus.update({f"fuzz/{name}.png": data for name, data in bitflip_variants(valid, 30)})
    corpus.update({f"fuzz/{name}.png": data for name, data in truncation_variants(valid, 30)})
    corpus["bomb/100000x100000.png"] = png_bomb(100_000, 100_000)
    corpus["renamed/eps.tif"] = EPS_BYTES
    corpus["renamed/pdf.tif"] = PDF_BYTES
    corpus["renamed/png-magic-garbage.png"] = b"\x89PNG\r\n\x1a\n" + np.random.default_rng(3).bytes(600)
    corpus["renamed/tiff-magic-garbage.tif"] = b"II*\x00" + np.random.default_rng(4).bytes(600)
    return corpus


@pytest.mark.skipif(PNGSUITE is None, reason="PngSuite x*.png files not found")
def test_hostile_inputs_fail_alone(src: Path, dst: Path) -> None:
    bad = hostile_corpus()
    # Valid images sorted before, among and after the bad ones, all in one shard.
    good = {"a-first.png": png_bytes(1), "fuzz/m-middle.png": png_bytes(2), "z-last.png": png_bytes(3)}
    for key, data in {**bad, **good}.items():
        (src / key).parent.mkdir(parents=True, exist_ok=True)
        (src / key).write_bytes(data)
    assert len(bad) >= 14 + 60 + 5

    spec, (shard,) = prepare_shards(job_config(src, dst, shard_size=1000))
    ctx = ShardContext(spec)
    result = ctx.process_shard(shard)
    commit(ctx, result)

    rows = assert_one_row_each(rows_of(dst), [*bad, *good])
    assert {k for k, r in rows.items() if r["status"] == "ok"} == set(good)
    misclassified = {k: rows[k]["error"] for k in bad if reason(rows[k]) not in INPUT_REASONS}
    assert not misclassified  # no internal_error or codec_error for a bad *input*
    assert reason(rows["bomb/100000x100000.png"]) == "too_large"
    for key in ("renamed/eps.tif", "renamed/pdf.tif"):
        assert "not an allowed image format" in rows[key]["error"]
    assert all(reason(rows[k]) == "decode_error" for k in bad if k.startswith("fuzz/cut-"))
    assert not result.restart_worker  # nothing hung
    assert_audit_clean(src, dst)
