"""Prefect flow ``recompress``: list SRC, plan shards, compress them (Ray, or in-process when small), summarise.

It only wires :func:`recodec.job.prepare_job` and the steps of :mod:`recodec.tasks.jobs`.
Without ``PREFECT_API_URL`` Prefect runs the flow against a temporary local API; with it
set, runs are recorded on that server (see docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recodec.config import RunConfig, as_run_config
from recodec.flows.redacting import redacting_flow
from recodec.flows.artifacts import publish_summary
from recodec.job import prepare_job
from recodec.locations import check_storage
from recodec.tasks import jobs

prepare_task = task(prepare_job, name="prepare", cache_policy=NONE)
check_task = task(check_storage, name="check-src-dst", cache_policy=NONE)
plan_task = task(jobs.plan, name="plan-shards", cache_policy=NONE)
pool_task = task(jobs.start_pool, name="start-workers", cache_policy=NONE)
delta_task = task(jobs.delta, name="plan-delta", cache_policy=NONE)
shards_task = task(jobs.process_shards, name="process-shards", cache_policy=NONE)
summarize_task = task(jobs.summarize, name="summarize", cache_policy=NONE)


@redacting_flow(name="recompress")
def recompress(config: RunConfig | dict[str, Any]) -> dict[str, Any]:
    """Recompress every image of ``config.src`` into ``config.dst`` and return the job summary."""
    job = prepare_task(as_run_config(config))  # a deployment's scheduled run passes plain JSON
    check_task(job.config)
    pool = pool_task(job)  # actors start while SRC is listed
    try:
        plan = plan_task(job)
        plan, delta = delta_task(job, plan)
    except BaseException:
        pool.stop()  # a failed listing must not leave the actors running
        raise
    stats = shards_task(job, plan, pool)
    summary = summarize_task(job, stats, delta)
    publish_summary(summary)
    return summary
