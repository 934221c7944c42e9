"""Prefect flow ``recompress``: list SRC, plan shards, compress them on Ray, summarise.

It only wires tasks from :mod:`recodec.tasks.jobs`; every step is a plain function there.
Without ``PREFECT_API_URL`` Prefect runs the flow against a temporary local API; with it
set, runs are recorded on that server (see docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recodec.config import RunConfig
from recodec.flows import redacting_flow
from recodec.tasks import jobs

prepare_task = task(jobs.prepare_job, name="prepare", cache_policy=NONE)
plan_task = task(jobs.plan, name="plan-shards", cache_policy=NONE)
compress_task = task(jobs.compress, name="compress-shards", cache_policy=NONE)
summarize_task = task(jobs.summarize, name="summarize", cache_policy=NONE)


@redacting_flow(name="recompress")
def recompress(config: RunConfig) -> dict[str, Any]:
    """Recompress every image of ``config.src`` into ``config.dst`` and return the job summary."""
    spec = prepare_task(config)
    plan = plan_task(config, spec)
    stats = compress_task(config, spec, plan)
    return summarize_task(config, spec, stats)
