"""Task metrics: how far the model's answer on the decoded image is from its answer on the original.

No labels: the original's prediction is the reference.

* ``task_agreement`` (classification and segmentation): the fraction of predictions that
  are the same, per tile (or per image with ``tile = 0``) for a classifier, per pixel for
  a segmenter.
* ``task_miou`` (segmentation): mean over classes of the IoU between the two class maps,
  over the classes present in either map (1.0 when both are empty).
* ``task_rel_l1`` (dense): ``sum |decoded - original| / sum |original|`` over every output
  channel and valid pixel; 0 for identical outputs, +inf when the original's output is all
  zero and the decoded one is not.

With a nodata value, pixels that are nodata in every band are left out of the per-pixel
metrics, as they are left out of PSNR.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recodec.vocabulary import METRICS

#: Metric -> the comparison a target may make on it (defined once, in recodec.vocabulary).
TASK_BOUND_OPS: dict[str, str] = {m.name: str(m.bound) for m in METRICS if m.task}
TASK_METRICS = tuple(TASK_BOUND_OPS)
#: The metrics each kind of model produces.
KIND_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("task_agreement",),
    "segmentation": ("task_agreement", "task_miou"),
    "dense": ("task_rel_l1",),
}


@dataclass
class TaskMetrics:
    """Task metrics of one decoded image (None where the model's kind does not define one)."""

    task_agreement: float | None = None
    task_miou: float | None = None
    task_rel_l1: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (what the manifest and the target search consume)."""
        return asdict(self)


def check_task_value(name: str, value: float) -> str | None:
    """Why ``value`` is not a usable bound on task metric ``name`` (None when it is)."""
    if name in ("task_agreement", "task_miou") and not 0 <= value <= 1:
        return f"{name} lies in [0, 1]"
    if name == "task_rel_l1" and not 0 <= value < math.inf:
        return f"{name} must be finite and >= 0"
    return None


def agreement(ref: np.ndarray, got: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Fraction of equal predictions (over ``mask`` when given; 1.0 when nothing is compared)."""
    same = ref == got
    if mask is not None:
        same = same[mask]
    return float(same.mean()) if same.size else 1.0


def mean_iou(ref: np.ndarray, got: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean IoU of two class maps over the classes present in either (1.0 when none is)."""
    if mask is not None:
        ref, got = ref[mask], got[mask]
    if ref.size == 0:
        return 1.0
    k = int(max(ref.max(), got.max())) + 1
    conf = np.bincount(ref.ravel().astype(np.int64) * k + got.ravel(), minlength=k * k).reshape(k, k)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present])) if present.any() else 1.0


def rel_l1(ref: np.ndarray, got: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``sum |got - ref| / sum |ref|`` over (C, H, W) outputs and the valid pixels of ``mask``."""
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    if mask is not None:
        ref64, got64 = ref64[:, mask], got64[:, mask]
    err = float(np.abs(got64 - ref64).sum())
    norm = float(np.abs(ref64).sum())
    if norm == 0:
        return 0.0 if err == 0 else math.inf
    return err / norm


def compare(kind: str, ref: np.ndarray, got: np.ndarray, mask: np.ndarray | None = None) -> TaskMetrics:
    """Task metrics of prediction ``got`` against reference prediction ``ref`` for a model ``kind``."""
    if ref.shape != got.shape:
        raise ValueError(f"predictions differ in shape: {ref.shape} vs {got.shape}")
    if kind == "classification":
        return TaskMetrics(task_agreement=agreement(ref, got))
    if kind == "segmentation":
        return TaskMetrics(task_agreement=agreement(ref, got, mask), task_miou=mean_iou(ref, got, mask))
    if kind == "dense":
        return TaskMetrics(task_rel_l1=rel_l1(ref, got, mask))
    raise ValueError(f"unknown task kind {kind!r}")
