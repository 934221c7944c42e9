"""One definition of the metrics: manifest metric columns, target bounds and reconcile's re-check.

Each :class:`MetricDef` names a manifest column, where its value comes from (a field of
:class:`recodec.metrics.Metrics`, or the output size for ``bpp``) and, when a target may bound
it, the one comparison that makes sense (quality up, error and size down).  The manifest
schema, :data:`recodec.target.BOUND_OPS` and reconcile's ``target_not_met`` check are all built
from :data:`METRICS`, so adding a metric here adds it everywhere at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDef:
    """One metric column of the manifest."""

    #: Manifest column name (and target grammar name when ``bound`` is set).
    name: str
    #: Field of :class:`recodec.metrics.Metrics` it is read from; None for ``bpp`` (from the size).
    field: str | None
    #: ">=" or "<=" when a target may bound it, else None.
    bound: str | None = None
    #: True for a per-band list column.
    per_band: bool = False
    #: True for a size metric (worse as quality gets better).
    size: bool = False
    #: True for a task-model metric (recodec.task): measured by ``--task-model``, not from Metrics.
    task: bool = False


#: In manifest column order.
METRICS: tuple[MetricDef, ...] = (
    MetricDef("bpp", None, "<=", size=True),
    MetricDef("psnr", "psnr", ">="),
    MetricDef("psnr_per_band", "psnr_per_band", per_band=True),
    MetricDef("ssim", "ssim", ">="),
    MetricDef("ms_ssim", "ms_ssim", ">="),
    MetricDef("max_abs_error", "max_abs_error", "<="),
    MetricDef("sam", "sam", "<="),
    MetricDef("metric_peak", "peak"),
    # The task family (recodec/task/metrics.py): the user's model on the decoded vs the original.
    MetricDef("task_agreement", None, ">=", task=True),
    MetricDef("task_miou", None, ">=", task=True),
    MetricDef("task_rel_l1", None, "<=", task=True),
)
#: Metric -> the only comparison a target may use for it.
BOUND_OPS: dict[str, str] = {m.name: m.bound for m in METRICS if m.bound is not None}
#: Metrics that measure size, not quality.
SIZE_METRICS = frozenset(m.name for m in METRICS if m.size)
#: Scalar metrics a target may bound (what reconcile re-checks from a row).
BOUNDED = tuple(BOUND_OPS)


def finite(x: float | None) -> float | None:
    """Manifest floats: +inf PSNR (identical pixels) is kept; NaN becomes null."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def metric_columns(metrics: Any, bpp: float | None) -> dict[str, Any]:
    """The manifest's metric columns from a :class:`~recodec.metrics.Metrics` and the output's bpp."""
    out: dict[str, Any] = {}
    for m in METRICS:
        if m.task:
            continue  # filled by the task model (recodec.pipeline), not from Metrics
        value = bpp if m.field is None else getattr(metrics, m.field)
        out[m.name] = [finite(v) for v in value] if m.per_band else finite(value)
    return out


def bounded_values(measured: Any) -> dict[str, Any]:
    """The values a target may bound, from a manifest row or a measured dict (missing -> None)."""
    return {name: measured.get(name) for name in BOUNDED}
