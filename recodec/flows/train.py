"""Prefect flow ``train``: train a learned codec on Ray, export its weights, measure it, write its card.

It only wires the plain functions of :mod:`recodec.tasks.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NONE

from recodec.tasks import train as T


def _load_split(data: str, split: str, limit: int) -> tuple[list[str], list[np.ndarray]]:
    """Up to ``limit`` image URLs of a split and their RGB arrays."""
    urls = T.list_images(data, split=split)[:limit]
    return urls, [T.load_rgb(u) for u in urls]


train_task = task(T.train_on_ray, name="train-model", cache_policy=NONE)
load_task = task(_load_split, name="load-images", cache_policy=NONE)
export_task = task(T.export_weights, name="export-weights", cache_policy=NONE)
evaluate_task = task(T.evaluate_rd, name="evaluate-rd", cache_policy=NONE)
card_task = task(T.write_model_card, name="model-card", cache_policy=NONE)


@flow(name="train", log_prints=False, validate_parameters=False)
def train(
    data: str,
    out_dir: str,
    *,
    model: str = "hyperprior",
    lambdas: tuple[float, ...] = T.DEFAULT_LAMBDAS,
    steps: int = 10_000,
    batch_size: int = 8,
    crop: int = 128,
    n: int = 64,
    m: int = 96,
    lr: float = 1e-3,
    ray_address: str | None = None,
    seed: int = 0,
    eval_data: str | None = None,
    max_eval_images: int = 16,
    init_from: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` on random crops of the images under ``data`` and write shipped weights.

    Writes ``out_dir/checkpoint.pt`` (resumable), ``out_dir/weights/<model>.pt`` +
    ``pins.json`` + ``MODEL_CARD.md``; RD points are measured on ``eval_data`` or, by
    default, on the held-out split of ``data`` (never trained on).  Returns a summary.
    """
    config = T.TrainConfig(model=model, lambdas=tuple(lambdas), n=n, m=m, steps=steps,
                           batch_size=batch_size, crop=crop, lr=lr, seed=seed)
    summary = train_task(data, out_dir, config, ray_address=ray_address, init_from=init_from)
    _, calibration = load_task(data, "train", 8)
    weights_dir = str(Path(out_dir) / "weights")
    exported = export_task(summary["checkpoint"], weights_dir, calibration, name=model)
    eval_urls, eval_images = load_task(eval_data or data, "all" if eval_data else "heldout", max_eval_images)
    rd = evaluate_task(exported["path"], eval_images, model=model) if eval_images else []
    card = card_task(str(Path(weights_dir) / "MODEL_CARD.md"), summary=summary, export=exported,
                     rd_points=rd, eval_images=eval_urls, data=data)
    return {"weights": exported["path"], "sha256": exported["sha256"], "bytes": exported["bytes"],
            "model_card": card, "rd": rd, "steps": summary["steps"], "device": summary["device"]}
