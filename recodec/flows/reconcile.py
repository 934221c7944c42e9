"""Prefect flow ``reconcile``: re-check every committed ok row of DST and write verdicts."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recodec.config import ReconcileConfig
from recodec.flows.redacting import redacting_flow
from recodec.tasks import reconcile as rec

verify_task = task(rec.verify, name="verify-outputs", cache_policy=NONE)


@redacting_flow(name="reconcile")
def reconcile(config: ReconcileConfig) -> dict[str, Any]:
    """Verify DST's outputs against its manifest on fresh actors; return the verdict summary."""
    return verify_task(config)
