"""Prefect flow ``storage-job``: the scheduled storage-cost job, run -> reconcile -> report.

Its parameters are plain JSON (a deployment stores them and a worker passes them back as dicts):
``config`` holds :class:`recodec.config.RunConfig` fields and is parsed here.  Credentials never
travel as parameters; the worker's environment provides them (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recodec.config import ReconcileConfig, as_run_config
from recodec.flows.redacting import redacting_flow
from recodec.flows.artifacts import publish_summary
from recodec.flows.reconcile import reconcile
from recodec.flows.recompress import recompress
from recodec.report import build_report, write_html, write_json


@task(name="report", cache_policy=NONE)
def report_task(dst: str, html: str, storage_options: dict[str, Any], prefix_levels: int) -> str:
    """Write the savings report (HTML and JSON next to it); return the HTML's URL."""
    rep = build_report(dst, prefix_levels=prefix_levels, storage_options=storage_options)
    write_html(rep, html, storage_options)
    write_json(rep, html.rsplit(".", 1)[0] + ".json", storage_options)
    return html


@redacting_flow(name="storage-job")
def storage_job(config: dict[str, Any], report_html: str | None = None, prefix_levels: int = 1,
                reconcile_workers: int = 0) -> dict[str, Any]:
    """One scheduled round: recompress what is new or changed, reconcile DST, write the report."""
    from recodec.report.paths import default_report_path

    run_config = as_run_config(config)
    summary = recompress(run_config)
    verdicts = reconcile(ReconcileConfig(dst=run_config.dst, src=run_config.src, workers=reconcile_workers,
                                         ray_address=run_config.ray_address,
                                         storage_options=run_config.storage_options))
    html = report_task(run_config.dst, report_html or default_report_path(run_config.dst, run_config.storage_options),
                       run_config.storage_options, prefix_levels)
    publish_summary(summary, html)
    return {"run": summary, "reconcile": {k: verdicts[k] for k in ("check_id", "checked", "verdicts", "ok")},
            "report": html}
