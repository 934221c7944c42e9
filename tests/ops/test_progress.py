"""Live progress: plain lines with rate/saved/failures/ETA, a final summary naming reasons, Prefect artifacts."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from recodec.progress import RunProgress, summary_markdown
from tests.reliability.helpers import job_config, run_job, write_archive


def test_plain_lines_and_final_summary_name_the_reasons() -> None:
    lines: list[str] = []
    live = RunProgress(10, sink=lines.append, interval_s=0, bar=False)
    live.resumed(2)
    live.shard(ok=3, failed=2, saved_bytes=5_000_000,
               errors=["a/1.png: timeout: no result after 60 s", "a/2.png: decode_error: truncated"])
    live.shard(ok=2, failed=1, errors=["b/3.png: timeout: again"])
    assert lines[-1].startswith("[recodec] images 10/10 (100%)") and "saved 5.0 MB" in lines[-1]
    assert "failed 3" in lines[-1] and "img/s" in lines[-1] and "ETA" in lines[-1]
    live.close()
    assert "5 ok, 3 failed" in lines[-3] and "2 resumed" in lines[-3]
    assert lines[-2] == "[recodec]   failed 2 x timeout (e.g. a/1.png)"
    assert lines[-1] == "[recodec]   failed 1 x decode_error (e.g. a/2.png)"
    assert live.as_dict()["failure_reasons"] == {"timeout": 2, "decode_error": 1}


def test_lines_are_periodic_not_per_shard() -> None:
    lines: list[str] = []
    live = RunProgress(100, sink=lines.append, interval_s=3600, bar=False)
    for _ in range(10):
        live.shard(ok=1)
    assert lines == []  # nothing until the interval passes or the run ends
    live.close()
    assert lines[0].startswith("[recodec] images 10/100")


def test_terminal_bar_shows_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    out = io.StringIO()
    monkeypatch.setattr("rich.progress.get_console", lambda: Console(file=out, force_terminal=True, width=160))
    live = RunProgress(4, sink=lambda _: None, bar=True)
    live.shard(ok=3, failed=1, saved_bytes=2_000_000, errors=["k: timeout: x"])
    live.close()
    text = out.getvalue()
    assert "4/4" in text and "saved 2.0 MB" in text and "failed 1" in text


def test_summary_markdown_table() -> None:
    md = summary_markdown({"run_id": "r", "images": 3, "ok": 2, "failed": 1, "ratio": 2.5,
                           "failure_reasons": {"timeout": 1}, "failure_examples": {"timeout": "x.png"}},
                          report_url="file:///tmp/r.html")
    assert "| ratio | 2.50x |" in md and "| timeout | 1 | `x.png` |" in md and "(file:///tmp/r.html)" in md


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_run_publishes_summary_artifact(src: Path, dst: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    write_archive(src, 2)
    summary = run_job(job_config(src, dst))
    assert summary["failure_reasons"] == {} and summary["images_per_second"] > 0

    async def read() -> list:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["recodec-run-summary"])))

    artifacts = asyncio.run(read())
    assert any(summary["run_id"] in (a.data or "") for a in artifacts)
