"""Train the example task model: a small segmentation CNN for 4-band (R, G, B, NIR) scenes.

Labels need no annotation: they come from spectral indices computed on a lightly
smoothed copy of each scene (:func:`index_labels`), so the network learns a
water / vegetation / bright-surface / other mask from the pixels alone::

    scene (H, W, 4) uint8 --3x3 box blur--> NDWI > 0.15  -> 1 water
                                            NDVI > 0.25  -> 2 vegetation
                                            mean(RGB) > 0.55 -> 3 bright surface
                                            otherwise    -> 0 other

The model (:class:`TinySegNet`) is exported as TorchScript with its sidecar, a model
card and a SHA-256 pin, exactly what ``recodec run --task-model`` takes.  Training runs
on the CPU (bf16 autocast where the CPU has native bf16), checkpoints every ``checkpoint_every`` steps
and on SIGTERM, and resumes from ``OUT/checkpoint.pt``.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

#: Class names of the example model, in logit order.
CLASSES = ("other", "water", "vegetation", "bright")
NDWI_MIN, NDVI_MIN, BRIGHT_MIN = 0.15, 0.25, 0.55
MODEL_FILE = "landcover4.pt"


def index_labels(rgbn: np.ndarray) -> np.ndarray:
    """(H, W) int64 class map of a (H, W, 4) R, G, B, NIR scene scaled to [0, 1]."""
    x = _box3(rgbn.astype(np.float32))
    r, g, b, n = (x[..., i] for i in range(4))
    ndwi = (g - n) / (g + n + 1e-6)
    ndvi = (n - r) / (n + r + 1e-6)
    labels = np.zeros(r.shape, np.int64)
    labels[(r + g + b) / 3 > BRIGHT_MIN] = 3
    labels[ndvi > NDVI_MIN] = 2
    labels[ndwi > NDWI_MIN] = 1  # water wins over everything (highest priority, set last)
    return labels


def _box3(x: np.ndarray) -> np.ndarray:
    """3x3 mean of each band, edges replicated (labels of a smoothed scene: no single-pixel speckle)."""
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = x.shape[:2]
    return sum(p[i:i + h, j:j + w] for i in range(3) for j in range(3)) / 9.0


def _net() -> Any:
    import torch
    from torch import nn

    class TinySegNet(nn.Module):
        """Four 3x3 convolutions (one dilated, for context) and a 1x1 classifier: ~11k parameters."""

        def __init__(self, bands: int = 4, width: int = 24, classes: int = len(CLASSES)) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(bands, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, classes, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    return TinySegNet()


def load_scenes(paths: Sequence[str | Path]) -> list[np.ndarray]:
    """The (H, W, 4) uint8 scenes among ``paths`` (others are skipped: the model takes R, G, B, NIR)."""
    from recodec.formats.source import read_image

    scenes = []
    for path in paths:
        arr = read_image(Path(path).read_bytes(), name=str(path)).array
        if arr.dtype == np.uint8 and arr.shape[2] == 4:
            scenes.append(arr)
    return scenes


def _batch(scenes: list[np.ndarray], labels: list[np.ndarray], rng: np.random.Generator, n: int,
           crop: int) -> tuple[Any, Any]:
    import torch

    xs, ys = [], []
    for _ in range(n):
        i = int(rng.integers(len(scenes)))
        h, w = labels[i].shape
        r, c = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        x = scenes[i][r:r + crop, c:c + crop].astype(np.float32) / 255.0
        y = labels[i][r:r + crop, c:c + crop]
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        k = int(rng.integers(4))
        xs.append(np.rot90(x, k).transpose(2, 0, 1).copy())
        ys.append(np.rot90(y, k).copy())
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def evaluate(model: Any, scenes: list[np.ndarray]) -> dict[str, float]:
    """Pixel accuracy and mean IoU of ``model`` against the index labels of ``scenes``."""
    import torch

    hits = total = 0
    inter = np.zeros(len(CLASSES))
    union = np.zeros(len(CLASSES))
    with torch.no_grad():
        for scene in scenes:
            y = index_labels(scene.astype(np.float32) / 255.0)
            x = torch.from_numpy(scene.astype(np.float32).transpose(2, 0, 1)[None] / 255.0)
            p = model(x).argmax(1)[0].numpy()
            hits += int((p == y).sum())
            total += y.size
            for k in range(len(CLASSES)):
                inter[k] += np.sum((p == k) & (y == k))
                union[k] += np.sum((p == k) | (y == k))
    present = union > 0
    return {"pixel_accuracy": hits / max(total, 1), "mean_iou": float(np.mean(inter[present] / union[present]))}


def train_task_model(train_paths: Sequence[str | Path], out_dir: str | Path, *,
                     eval_paths: Sequence[str | Path] = (), steps: int = 1500, batch_size: int = 8,
                     crop: int = 96, lr: float = 3e-3, seed: int = 0, threads: int = 1,
                     checkpoint_every: int = 200, precision: str = "auto") -> dict[str, Any]:
    """Train :class:`TinySegNet` on the index labels of ``train_paths``; export it into ``out_dir``."""
    import torch

    from recodec.precision import resolve_precision

    bf16 = resolve_precision(precision, "cpu") == "bf16"

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scenes = load_scenes(train_paths)
    if not scenes:
        raise ValueError("no 4-band uint8 (R, G, B, NIR) scene among the training files")
    labels = [index_labels(s.astype(np.float32) / 255.0) for s in scenes]
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    ckpt = out / "checkpoint.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        step = int(state["step"])
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("now", True))
    rng = np.random.default_rng(seed + step)
    t0, losses = time.time(), []

    def save() -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "step": step}, ckpt)

    while step < steps and not stop["now"]:
        x, y = _batch(scenes, labels, rng, batch_size, crop)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            # Not channels-last: with bf16 it gave NaN gradients after a few steps (torch 2.13 CPU).
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.detach()))
        if step % checkpoint_every == 0 or step == steps:
            save()
            print(f"step {step}/{steps} loss {np.mean(losses[-checkpoint_every:]):.4f} "
                  f"{time.time() - t0:.0f}s", flush=True)
    if stop["now"]:
        save()
        return {"step": step, "stopped": True, "checkpoint": str(ckpt)}
    model = model.float().eval()
    return export_model(model, out, steps=steps, train_paths=train_paths, eval_paths=eval_paths,
                        train_seconds=time.time() - t0, final_loss=float(np.mean(losses[-100:] or [0])))


def export_model(model: Any, out: Path, *, steps: int, train_paths: Sequence[str | Path],
                 eval_paths: Sequence[str | Path], train_seconds: float, final_loss: float) -> dict[str, Any]:
    """TorchScript file, sidecar, SHA-256 pin and model card of a trained model."""
    import torch

    scripted = torch.jit.script(model)
    path = out / MODEL_FILE
    scripted.save(str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    sidecar = {"kind": "segmentation", "bands": [0, 1, 2, 3], "scale": 1 / 255, "offset": 0.0,
               "tile": 256, "overlap": 16, "classes": list(CLASSES), "name": "recodec-landcover4",
               "sha256": digest}
    (out / (MODEL_FILE + ".json")).write_text(json.dumps(sidecar, indent=2) + "\n")
    (out / "pins.json").write_text(json.dumps({MODEL_FILE: digest}, indent=2) + "\n")
    scores = evaluate(model, load_scenes(eval_paths)) if eval_paths else {}
    info = {"weights": path.name, "sha256": digest, "bytes": path.stat().st_size, "steps": steps,
            "train_seconds": round(train_seconds, 1), "final_loss": round(final_loss, 4),
            "train_files": [Path(p).name for p in train_paths], "eval_files": [Path(p).name for p in eval_paths],
            **{f"heldout_{k}": round(v, 4) for k, v in scores.items()}}
    (out / "train.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
