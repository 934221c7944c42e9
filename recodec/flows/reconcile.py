"""Prefect flow ``reconcile``: re-check every committed ok row of DST and write verdicts."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recodec.flows import redacting_flow
from recodec.tasks import reconcile as rec

verify_task = task(rec.verify, name="verify-outputs", cache_policy=NONE)


@redacting_flow(name="reconcile")
def reconcile(dst: str, *, workers: int = 0, ray_address: str | None = None,
              storage_options: dict[str, Any] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Verify DST's outputs against its manifest on fresh actors; return the verdict summary."""
    return verify_task(dst, workers=workers, ray_address=ray_address,
                       storage_options=storage_options or {}, batch_size=batch_size)
