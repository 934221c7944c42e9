"""Superseded outputs: audit reports them; prune removes them only after the replacement reconciled."""

from __future__ import annotations

from pathlib import Path

import pytest

from recodec.config import ReconcileConfig
from recodec.flows.reconcile import reconcile
from recodec.tasks.prune import prune
from tests.reliability.helpers import audit_report, job_config, run_job, write_archive

pytestmark = pytest.mark.usefixtures("ray_local", "prefect_harness")


def test_superseded_outputs_are_reported_then_pruned_after_reconcile(src: Path, dst: Path) -> None:
    keys = write_archive(src, 2)
    run_job(job_config(src, dst))  # jpeg -> .jpg
    run_job(job_config(src, dst, codec="webp", quality=80))  # new settings, new names (.webp)
    old = {str(dst / Path(k).with_suffix(".jpg")) for k in keys}
    report = audit_report(src, dst)
    assert report.ok and report.info["superseded_outputs"] == 2

    early = prune(str(dst), yes=True)  # the replacements have no verdict yet
    assert not early.pruned and {v.split(":")[0] for v in early.refused.values()} == {"replacement_unverified"}
    assert all(Path(p).exists() for p in old)

    assert reconcile(ReconcileConfig(dst=str(dst), workers=1))["ok"]
    dry = prune(str(dst))
    assert set(dry.eligible) == old and all(Path(p).exists() for p in old)
    done = prune(str(dst), yes=True)
    assert set(done.pruned) == old and not any(Path(p).exists() for p in old)
    assert all((dst / Path(k).with_suffix(".webp")).exists() for k in keys)
    after = audit_report(src, dst)
    assert after.ok and after.info["superseded_outputs"] == 0  # pruned, not missing
    assert reconcile(ReconcileConfig(dst=str(dst), workers=1))["ok"]  # nor does reconcile look for them
    assert prune(str(dst), yes=True).superseded == 0
