"""Task metrics on hand-made predictions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recodec.task.metrics import agreement, compare, mean_iou, rel_l1


def test_agreement_and_miou_by_hand() -> None:
    ref = np.array([[0, 0, 1, 1]])
    got = np.array([[0, 1, 1, 1]])
    assert agreement(ref, got) == 0.75
    # class 0: inter 1, union 2 -> 0.5; class 1: inter 2, union 3 -> 2/3
    assert mean_iou(ref, got) == pytest.approx((0.5 + 2 / 3) / 2)
    mask = np.array([[True, False, True, True]])
    assert agreement(ref, got, mask) == 1.0 and mean_iou(ref, got, mask) == 1.0
    assert agreement(ref, got, np.zeros_like(mask)) == 1.0  # nothing compared, nothing wrong


def test_miou_ignores_classes_absent_from_both() -> None:
    ref = np.array([0, 0, 5, 5])
    assert mean_iou(ref, ref.copy()) == 1.0
    assert mean_iou(ref, np.array([0, 0, 5, 0])) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_rel_l1() -> None:
    ref = np.ones((2, 2, 2))
    got = ref.copy()
    got[0, 0, 0] = 3.0
    assert rel_l1(ref, got) == pytest.approx(2 / 8)
    assert rel_l1(np.zeros((1, 2, 2)), np.zeros((1, 2, 2))) == 0.0
    assert rel_l1(np.zeros((1, 2, 2)), np.ones((1, 2, 2))) == math.inf
    mask = np.array([[False, True], [True, True]])
    assert rel_l1(ref, got, mask) == 0.0


def test_compare_per_kind() -> None:
    a = np.array([0, 1, 1])
    assert compare("classification", a, a).as_dict() == {"task_agreement": 1.0, "task_miou": None,
                                                         "task_rel_l1": None}
    seg = compare("segmentation", a[None], np.array([[0, 1, 0]]))
    assert seg.task_agreement == pytest.approx(2 / 3) and seg.task_miou is not None
    assert compare("dense", np.ones((1, 1, 3)), np.ones((1, 1, 3))).task_rel_l1 == 0.0
    with pytest.raises(ValueError, match="shape"):
        compare("segmentation", a, a[:2])
