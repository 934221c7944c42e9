"""Training tasks of the learned codecs: data, optimisation loop, export, evaluation.

Plain functions (usable from a script or a test) plus :func:`train_on_ray`, which runs
:func:`train_model` as a Ray task on a GPU when the cluster has one and on the CPU
otherwise.  The Prefect flow :mod:`recodec.flows.train` only wires these together.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".ppm", ".bmp")
#: CompressAI's MSE ladder (loss = lambda * 255^2 * MSE + bpp), low to high quality.
DEFAULT_LAMBDAS: tuple[float, ...] = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483)
#: One image name in HOLDOUT_MODULUS is held out of training (by CRC-32 of its file name).
HOLDOUT_MODULUS = 10


@dataclass
class TrainConfig:
    """Everything that defines one training run (recorded in the model card)."""

    model: str = "hyperprior"
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    n: int = 64
    m: int = 96
    steps: int = 10_000
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    #: Fractions of the steps after which the learning rate is multiplied by ``lr_decay``.
    lr_milestones: tuple[float, ...] = (0.6, 0.85)
    lr_decay: float = 0.3
    #: Fraction of the steps after which the decoder sees rounded (not noisy) latents.
    ste_from: float = 0.75
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 50
    threads: int | None = None
    max_images: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_heldout(name: str) -> bool:
    """True for the file names reserved for evaluation (deterministic 10% split)."""
    return zlib.crc32(Path(name).name.encode()) % HOLDOUT_MODULUS == 0


def list_images(data: str, *, split: str = "train") -> list[str]:
    """Image URLs under a folder or fsspec URL; ``split`` is "train", "heldout" or "all"."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(data)
    paths = sorted(
        p for p in fs.find(root) if p.lower().endswith(IMAGE_SUFFIXES)
    )
    if split == "train":
        paths = [p for p in paths if not is_heldout(p)]
    elif split == "heldout":
        paths = [p for p in paths if is_heldout(p)]
    elif split != "all":
        raise ValueError(f"split must be train, heldout or all, not {split!r}")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [p if protocol in ("file", "local") else f"{protocol}://{p}" for p in paths]


def load_rgb(url: str) -> np.ndarray:
    """An 8-bit RGB (H, W, 3) array from a local path or fsspec URL."""
    import fsspec
    from PIL import Image

    with fsspec.open(url, "rb") as fh:
        data = fh.read()
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def random_crops(images: list[np.ndarray], batch: int, crop: int, rng: random.Random) -> np.ndarray:
    """A (B, 3, crop, crop) float32 batch in [0, 1] of random crops with random flips."""
    out = np.empty((batch, 3, crop, crop), dtype=np.float32)
    for i in range(batch):
        img = images[rng.randrange(len(images))]
        h, w = img.shape[:2]
        if h < crop or w < crop:  # tiny images are tiled by reflection rather than skipped
            img = np.pad(img, ((0, max(0, crop - h)), (0, max(0, crop - w)), (0, 0)), mode="reflect")
            h, w = img.shape[:2]
        top, left = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1)
        patch = img[top:top + crop, left:left + crop]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        out[i] = patch.transpose(2, 0, 1) / 255.0
    return out


def _rate_bits(likelihoods: list[Any]) -> Any:
    import torch

    return sum(torch.log2(lk).sum() for lk in likelihoods) * -1.0


def train_model(data: str, out_dir: str, config: TrainConfig, *, init_from: str | None = None) -> dict[str, Any]:
    """Train (or resume) a model on random crops of ``data``; returns a summary dict.

    Checkpoints go to ``out_dir/checkpoint.pt`` every ``checkpoint_every`` steps and a
    run resumes from there.  ``init_from`` starts from another checkpoint's weights.
    """
    import torch

    from recodec.codecs.learned.models import build_model

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"

    urls = list_images(data, split="train")
    if config.max_images:
        urls = urls[: config.max_images]
    if not urls:
        raise ValueError(f"no training images under {data}")
    images = [load_rgb(u) for u in urls]

    model = build_model(config.model, config.n, config.m, len(config.lambdas)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    ckpt_path = out / "checkpoint.pt"
    step = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        rng.seed(config.seed + step)
    elif init_from:
        state = torch.load(init_from, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])

    lambdas = torch.tensor(config.lambdas)
    log = (out / "train_log.jsonl").open("a")
    t0, window = time.time(), []
    model.train()
    while step < config.steps:
        lr = config.lr * config.lr_decay ** sum(step >= f * config.steps for f in config.lr_milestones)
        for g in opt.param_groups:
            g["lr"] = lr
        model.ste = step >= config.ste_from * config.steps
        q = rng.randrange(len(config.lambdas))
        x = torch.from_numpy(random_crops(images, config.batch_size, config.crop, rng)).to(device)
        res = model(x, q)
        pixels = x.shape[0] * x.shape[2] * x.shape[3]
        mse = torch.mean((res["x_hat"] - x) ** 2)
        bpp = _rate_bits(res["likelihoods"]) / pixels
        loss = lambdas[q] * 255**2 * mse + bpp
        if "aux_likelihoods" in res:
            loss = loss + _rate_bits(res["aux_likelihoods"]) / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        window.append((q, bpp.item(), mse.item()))
        if step % config.log_every == 0 or step == config.steps:
            psnr = [10 * math.log10(1 / max(m, 1e-10)) for _, _, m in window]
            log.write(json.dumps({
                "step": step, "lr": lr, "seconds": round(time.time() - t0, 1),
                "bpp": round(float(np.mean([b for _, b, _ in window])), 4),
                "psnr": round(float(np.mean(psnr)), 3), "loss": round(loss.item(), 4),
            }) + "\n")
            log.flush()
            window = []
        if step % config.checkpoint_every == 0 or step == config.steps:
            _save_checkpoint(ckpt_path, model, opt, step, config)
    log.close()
    return {"checkpoint": str(ckpt_path), "steps": step, "device": device, "images": len(urls),
            "seconds": round(time.time() - t0, 1), "config": asdict(config)}


def _save_checkpoint(path: Path, model: Any, opt: Any, step: int, config: TrainConfig) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "config": json.dumps(asdict(config))}, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint


def train_on_ray(data: str, out_dir: str, config: TrainConfig, *, ray_address: str | None = None,
                 init_from: str | None = None) -> dict[str, Any]:
    """Run :func:`train_model` as a Ray task (``num_gpus=1`` when the cluster has a GPU)."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, ignore_reinit_error=True,
                 log_to_driver=False, num_cpus=None if ray_address else os.cpu_count())
        started = True
    try:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(num_gpus=gpus, num_cpus=1, max_retries=0)(train_model)
        return ray.get(task.remote(data, out_dir, config, init_from=init_from))
    finally:
        if started:
            ray.shutdown()


def export_weights(checkpoint: str, out_dir: str, calibration: list[np.ndarray], *,
                   name: str | None = None) -> dict[str, Any]:
    """Turn a training checkpoint into shipped weights (integer decoder) + SHA-256 pin."""
    from recodec.codecs.learned.export import export_checkpoint

    return export_checkpoint(checkpoint, out_dir, calibration, name=name)


def evaluate_rd(weights: str, images: list[np.ndarray], *, model: str = "hyperprior",
                qualities: list[int] | None = None) -> list[dict[str, float]]:
    """Mean bpp (whole file) and PSNR (decoded output) per quality over ``images``."""
    from recodec.codecs.learned.codec import codec_for_weights

    codec = codec_for_weights(model, weights)
    codec.load()  # the ladder length comes from the weights
    qualities = qualities or list(range(1, codec.knob.high + 1))
    points = []
    for q in qualities:
        bpps, psnrs = [], []
        for img in images:
            data = codec.encode(img, quality=q)
            dec = codec.decode(data)
            bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            psnrs.append(psnr(img, dec))
        points.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    return points


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit arrays (peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def write_model_card(path: str, *, summary: dict[str, Any], export: dict[str, Any],
                     rd_points: list[dict[str, float]], eval_images: list[str], data: str,
                     notes: str = "") -> str:
    """Write the Markdown model card next to the weights; returns its path."""
    cfg = summary["config"]
    lines = [
        f"# Model card: {export['file']}",
        "",
        f"- model: `{cfg['model']}` (N={cfg['n']}, M={cfg['m']}), variable rate, "
        f"{len(cfg['lambdas'])} qualities",
        f"- weights: `{export['file']}`, {export['bytes']} bytes, SHA-256 `{export['sha256']}`",
        f"- training data: `{data}` ({summary['images']} images, held-out split excluded: "
        f"CRC-32(file name) % {HOLDOUT_MODULUS} == 0)",
        f"- steps: {summary['steps']}, batch {cfg['batch_size']}, crop {cfg['crop']}, Adam lr {cfg['lr']} "
        f"(x{cfg['lr_decay']} after {', '.join(f'{f:.0%}' for f in cfg['lr_milestones'])} of the steps), "
        f"decoder input noisy then straight-through rounded after {cfg['ste_from']:.0%}, "
        f"seed {cfg['seed']}, device {summary['device']}, "
        f"{summary['seconds']} s",
        "- loss: lambda * 255^2 * MSE + bpp; lambdas (quality 1..N): "
        + ", ".join(str(x) for x in cfg["lambdas"]),
        "",
        f"## RD points on {len(eval_images)} held-out images (bpp = whole file, PSNR on decoded RGB)",
        "",
        "| quality | lambda | bpp | PSNR dB |",
        "|---|---|---|---|",
    ]
    for p in rd_points:
        lam = cfg["lambdas"][int(p["quality"]) - 1]
        lines.append(f"| {p['quality']} | {lam} | {p['bpp']:.4f} | {p['psnr']:.2f} |")
    lines += ["", "Held-out images: " + ", ".join(Path(u).name for u in eval_images), ""]
    if notes:
        lines += ["## Notes", "", notes, ""]
    Path(path).write_text("\n".join(lines))
    return path
