"""Prefect flow ``train``: train a learned codec on Ray, export its weights, measure it, write its card.

It only wires the plain functions of :mod:`recodec.tasks.train`.  :func:`train_local` wires
the same functions without Prefect or Ray, in this process: long background runs use it,
because SIGTERM then reaches the training loop (which checkpoints and returns) and no
ephemeral Prefect server has to start on a loaded machine.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from prefect import flow, task
from prefect.cache_policies import NONE

from recodec.errors import ConfigError
from recodec.tasks import train as T


def _load_split(data: str, split: str, limit: int) -> tuple[list[str], list[np.ndarray]]:
    """Up to ``limit`` image URLs of a split and their RGB arrays."""
    urls = T.list_images(data, split=split)[:limit]
    return urls, [T.load_rgb(u) for u in urls]


PLAIN = SimpleNamespace(train=T.train_model, load=_load_split, export=T.export_weights,
                        evaluate=T.evaluate_rd, card=T.write_model_card)
TASKS = SimpleNamespace(
    train=task(T.train_on_ray, name="train-model", cache_policy=NONE),
    load=task(_load_split, name="load-images", cache_policy=NONE),
    export=task(T.export_weights, name="export-weights", cache_policy=NONE),
    evaluate=task(T.evaluate_rd, name="evaluate-rd", cache_policy=NONE),
    card=task(T.write_model_card, name="model-card", cache_policy=NONE),
)


def _config(recipe: dict[str, Any], precision: str, max_minutes: float | None,
            threads: int | None) -> tuple[T.TrainConfig, tuple[str, ...]]:
    """TrainConfig from the recipe arguments that were given (None: default or checkpoint's)."""
    if recipe.get("lambdas") is not None:
        recipe["lambdas"] = tuple(recipe["lambdas"])
    extra = {k: recipe.pop(k) for k in RNN_ONLY if recipe.get(k) is not None}
    if extra and recipe.get("model") != "rnn":
        raise ConfigError(f"{', '.join(extra)}: only for --model rnn")
    given = {k: v for k, v in recipe.items() if v is not None}
    config = T.TrainConfig(**given, precision=precision, threads=threads, extra=extra,
                           max_seconds=max_minutes * 60 if max_minutes else None)
    return config, tuple(given)


#: Recipe arguments of the recurrent codec only (fields of ``RnnTrainConfig``, passed as ``extra``).
RNN_ONLY = ("ms_ssim_weight",)


def _pipeline(steps: SimpleNamespace, data: str, out_dir: str, config: T.TrainConfig, *,
              eval_data: str | None, max_eval_images: int, **train_kwargs: Any) -> dict[str, Any]:
    """Train, then (unless stopped by a signal) export, evaluate and write the model card."""
    eval_urls, eval_images = steps.load(eval_data or data, "all" if eval_data else "heldout", max_eval_images)
    summary = steps.train(data, out_dir, config, heldout=eval_images, **train_kwargs)
    result = {"checkpoint": summary["checkpoint"], "steps": summary["steps"], "device": summary["device"],
              "stopped": summary["stopped"]}
    if summary["interrupted"]:
        return result
    name = summary["config"]["model"]
    _, calibration = steps.load(data, "train", 8)
    weights_dir = str(Path(out_dir) / "weights")
    exported = steps.export(summary["checkpoint"], weights_dir, calibration, name=name)
    rd = steps.evaluate(exported["path"], eval_images, model=name) if eval_images else []
    card = steps.card(str(Path(weights_dir) / "MODEL_CARD.md"), summary=summary, export=exported,
                      rd_points=rd, eval_images=eval_urls, data=data)
    return {**result, "weights": exported["path"], "sha256": exported["sha256"], "bytes": exported["bytes"],
            "model_card": card, "rd": rd}


@flow(name="train", log_prints=False, validate_parameters=False)
def train(
    data: str,
    out_dir: str,
    *,
    model: str | None = None,
    lambdas: tuple[float, ...] | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    crop: int | None = None,
    n: int | None = None,
    m: int | None = None,
    lr: float | None = None,
    ray_address: str | None = None,
    seed: int | None = None,
    eval_data: str | None = None,
    max_eval_images: int = 16,
    init_from: str | None = None,
    resume: str | None = None,
    precision: str = "auto",
    max_minutes: float | None = None,
    threads: int | None = None,
    ms_ssim_weight: float | None = None,
) -> dict[str, Any]:
    """Train a learned codec on random crops of the images under ``data`` and write shipped weights.

    Writes ``out_dir/checkpoint.pt`` (resumable; also every few minutes), then
    ``out_dir/weights/<model>.pt`` + ``pins.json`` + ``MODEL_CARD.md``; RD points are
    measured on ``eval_data`` or, by default, on the held-out split of ``data`` (never
    trained on).  Recipe arguments left at None take the defaults of
    :class:`~recodec.tasks.train.TrainConfig`, or the resumed checkpoint's values.
    Returns a summary.
    """
    recipe = dict(model=model, lambdas=lambdas, steps=steps, batch_size=batch_size, crop=crop,
                  n=n, m=m, lr=lr, seed=seed, ms_ssim_weight=ms_ssim_weight)
    config, given = _config(recipe, precision, max_minutes, threads)
    return _pipeline(TASKS, data, out_dir, config, eval_data=eval_data, max_eval_images=max_eval_images,
                     init_from=init_from, resume=resume, override=given, ray_address=ray_address)


def train_local(data: str, out_dir: str, *, eval_data: str | None = None, max_eval_images: int = 16,
                init_from: str | None = None, resume: str | None = None, precision: str = "auto",
                max_minutes: float | None = None, threads: int | None = None,
                **recipe: Any) -> dict[str, Any]:
    """:func:`train` in this process, without Prefect or Ray (SIGTERM: checkpoint and return)."""
    recipe.pop("ray_address", None)
    config, given = _config(recipe, precision, max_minutes, threads)
    with T.stop_on_signals():
        return _pipeline(PLAIN, data, out_dir, config, eval_data=eval_data, max_eval_images=max_eval_images,
                         init_from=init_from, resume=resume, override=given)
