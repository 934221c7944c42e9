"""The savings report: totals equal the manifest's, the HTML is self-contained and renders in Chromium."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from recodec.errors import ConfigError
from recodec.layout import manifest_part_path, reconcile_part_path
from recodec.manifest import MANIFEST_SCHEMA, RECONCILE_SCHEMA, PartSink, to_table
from recodec.report import build_report, write_html, write_json
from recodec.report.html import fmt_bytes
from recodec.report.prices import DEFAULT_PRICES, price_table

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)


def _row(key: str, status: str, src: int, dst: int | None, *, day: int = 0, codec: str = "jxl",
         dtype: str = "uint8", bands: int = 3, psnr: float | None = 40.0, error: str | None = None) -> dict[str, Any]:
    return dict(run_id=f"run{day}", job_key="job", shard_id=day, source_uri=f"/src/{key}", source_key=key,
                source_bytes=src, dest_bytes=dst, dest_uri=f"/dst/{key}.out" if dst else None, codec=codec,
                dtype=dtype, bands=bands, width=10, height=10, bpp=None if dst is None else dst * 8 / 100,
                psnr=psnr, ssim=0.99 if psnr else None, max_abs_error=3.0 if psnr else None, status=status,
                error=error, created_at=T0 + dt.timedelta(days=day))


def _synthetic_dst(root: Path) -> dict[str, int]:
    """A DST with superseded rows, failures and verdicts; returns the expected totals."""
    sink = PartSink(str(root))
    day0 = [_row("a/x/1.tif", "ok", 1000, 400), _row("a/x/2.tif", "ok", 3000, 1000, dtype="uint16", bands=1),
            _row("b/3.png", "failed", 500, None, psnr=None, error="worker_lost: died"),
            _row("b/4.png", "ok", 800, 700, codec="webp"),
            _row("c/5.tif", "ok", 2000, 500, dtype="uint16", bands=4)]
    day3 = [_row("b/3.png", "ok", 500, 100, day=3),  # retried: supersedes the failed row
            _row("b/6.png", "skipped", 100, None, day=3, psnr=None, error="no_gain: larger")]
    sink.write_part(to_table(day0, MANIFEST_SCHEMA), manifest_part_path(str(root), "job", 0))
    sink.write_part(to_table(day3, MANIFEST_SCHEMA), manifest_part_path(str(root), "job", 3))
    verdicts = [dict(check_id="c1", run_id=r["run_id"], job_key="job", dest_uri=r["dest_uri"], verdict="ok",
                     checked_at=T0 + dt.timedelta(days=4)) for r in day0 + day3 if r["dest_uri"]]
    verdicts[-1]["verdict"] = "sha256_mismatch"
    sink.write_part(to_table(verdicts, RECONCILE_SCHEMA), reconcile_part_path(str(root), "c1", 0))
    ok_src, ok_dst = 1000 + 3000 + 800 + 2000 + 500, 400 + 1000 + 700 + 500 + 100
    return {"images": 6, "ok": 5, "failed": 0, "skipped": 1, "source_bytes": ok_src + 100,
            "output_bytes": ok_dst, "saved_bytes": ok_src - ok_dst}


def test_report_totals_breakdowns_and_cost(tmp_path: Path) -> None:
    expected = _synthetic_dst(tmp_path / "dst")
    rep = build_report(str(tmp_path / "dst"), prefix_levels=1,
                       report_config={"storage_class": "nas", "prices": {"nas": 0.5}})
    assert {k: rep["totals"][k] for k in expected} == expected
    assert rep["totals"]["ratio"] == pytest.approx(7300 / 2700)
    by_class = {r["name"]: r["images"] for r in rep["by_class"]}
    assert by_class == {"8-bit RGB": 4, "16-bit single": 1, "16-bit multiband": 1}
    assert {r["name"]: r["saved_bytes"] for r in rep["by_prefix"]} == {"a": 2600, "b": 500, "c": 1500}
    assert {r["name"]: r["images"] for r in rep["by_codec"]} == {"jxl": 5, "webp": 1}
    assert [(d["images"], d["cumulative_saved_bytes"]) for d in rep["by_date"]] == [(4, 4200), (2, 4600)]
    assert rep["failures"] == [{"status": "skipped", "reason": "no_gain", "n": 1, "example": "b/6.png"}]
    assert rep["reconcile"]["verdicts"] == {"ok": 4, "sha256_mismatch": 1}
    assert rep["quality"]["psnr"]["n"] == 5 and rep["quality"]["psnr"]["p50"] == 40.0
    assert rep["cost"]["saved_usd_month"] == pytest.approx(4600 / 1e9 * 0.5)
    assert rep["cost"]["prices"]["STANDARD"] == DEFAULT_PRICES["STANDARD"]
    out = tmp_path / "r.json"
    write_json(rep, str(out))
    assert json.loads(out.read_text())["totals"]["saved_bytes"] == 4600


def test_unknown_storage_class_is_refused() -> None:
    with pytest.raises(ConfigError):
        price_table({"storage_class": "GLACIER_FAST"})


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        if path := shutil.which(name):
            return path
    return None


@pytest.mark.skipif(_browser() is None, reason="no Chromium on this machine (.ci/run installs it)")
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from PIL import Image

    expected = _synthetic_dst(tmp_path / "dst")
    html = tmp_path / "report.html"
    write_html(build_report(str(tmp_path / "dst")), str(html))
    text = html.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text  # self-contained
    args = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*args, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    for card, value in [("total-source", expected["source_bytes"]), ("total-output", expected["output_bytes"]),
                        ("total-saved", expected["saved_bytes"])]:
        assert f'id="{card}"' in dom and fmt_bytes(value) in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*args, "--window-size=1000,1400", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("L")
    lo, hi = image.getextrema()
    assert image.size == (1000, 1400) and hi - lo > 100  # not a blank page
    # The plots rendered: a good share of the page is neither white nor text-black.
    assert sum(image.histogram()[60:230]) > 0.01 * image.size[0] * image.size[1]
