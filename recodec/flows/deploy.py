"""``recodec deploy``: register the scheduled storage job with a Prefect server.

Creates (or updates) a deployment of the ``storage-job`` flow (run -> reconcile -> report) with a
cron schedule, in a ``process`` work pool that is created when missing.  The deployment points at
the flow by module path (``recodec.flows.scheduled.storage_job``), so any worker whose Python can
import recodec runs it; no image or code storage is needed.  Credentials are never stored in the
deployment: ``storage_options`` are dropped from its parameters and come from the worker's
environment.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

ENTRYPOINT = "recodec.flows.scheduled.storage_job"


def ensure_work_pool(name: str, pool_type: str = "process") -> None:
    """Create the work pool if the server has none of that name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))


def deploy_storage_job(config: dict[str, Any], *, name: str, cron: str, work_pool: str, timezone: str = "UTC",
                       report_html: str | None = None, paused: bool = False) -> dict[str, Any]:
    """Create the deployment; return its id, name and schedule."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import EntrypointType, deploy

    from recodec.config import as_run_config
    from recodec.flows.scheduled import storage_job

    params = {k: v for k, v in as_run_config(config).public_dict().items() if v is not None}
    params["extensions"] = list(params.get("extensions", ()))
    ensure_work_pool(work_pool)
    deployment = storage_job.to_deployment(
        name=name, schedules=[CronSchedule(cron=cron, timezone=timezone)], paused=paused,
        parameters={"config": params, "report_html": report_html},
        entrypoint_type=EntrypointType.MODULE_PATH, work_pool_name=work_pool,
        description="recodec scheduled storage job: run -> reconcile -> report")
    with contextlib.redirect_stdout(sys.stderr):  # Prefect's own table; our stdout is the JSON result
        (deployment_id,) = deploy(deployment, work_pool_name=work_pool, build=False, push=False,
                                  print_next_steps_message=False, ignore_warnings=True)
    return {"id": str(deployment_id), "name": f"storage-job/{name}", "cron": cron, "timezone": timezone,
            "work_pool": work_pool}
