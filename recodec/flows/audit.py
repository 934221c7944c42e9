"""Prefect flow ``audit``: check DST's archive invariants (and, given SRC, that sources are unchanged)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from recodec.config import AuditConfig
from recodec.flows.redacting import redacting_flow
from recodec.tasks import audit as aud

audit_task = task(aud.audit, name="check-invariants", cache_policy=NONE)


@redacting_flow(name="audit")
def audit(config: AuditConfig) -> aud.AuditReport:
    """Audit DST against its manifest and plans; return the report (violations and counts)."""
    return audit_task(config.src, config.dst, config.storage_options)
