"""Prefect artifacts of a run: the summary table and a link to the savings report."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE


@task(name="publish-summary", cache_policy=NONE)
def publish_summary(summary: dict[str, Any], report_url: str | None = None) -> None:
    """Attach the run summary (Markdown table) and the report link to the current flow run."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    from recodec.progress import summary_markdown

    create_markdown_artifact(summary_markdown(summary, report_url), key="recodec-run-summary",
                             description="recodec run summary")
    if report_url:
        create_link_artifact(report_url, link_text="savings report", key="recodec-report")
