"""Training tasks of the learned codecs: data, optimisation loop, export, evaluation.

Plain functions (usable from a script or a test) plus :func:`train_on_ray`, which runs
:func:`train_model` as a Ray task on a GPU when the cluster has one and on the CPU
otherwise.  The Prefect flow :mod:`recodec.flows.train` only wires these together.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from recodec.codecs.crops import random_crops
from recodec.codecs.learned.lambdas import DEFAULT_LAMBDAS
from recodec.precision import resolve_precision
from recodec.metrics import psnr as metrics_psnr
from recodec.metrics import psnr_from_mse

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".ppm", ".bmp")
#: One image name in HOLDOUT_MODULUS is held out of training (by CRC-32 of its file name).
HOLDOUT_MODULUS = 10


@dataclass
class TrainConfig:
    """Everything that defines one training run (recorded in the checkpoint and model card)."""

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
    #: Mixed precision of the training forward pass: "bf16" (autocast), "fp32", or "auto" (bf16 on
    #: GPUs and CPUs that compute it natively, else fp32: :mod:`recodec.precision`).
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    checkpoint_every: int = 1000
    #: A checkpoint is also written after this many minutes of wall time (and on SIGTERM).
    checkpoint_minutes: float = 5.0
    #: Held-out loss is measured (and ``best.pt`` kept) every this many minutes; 0 disables it.
    eval_minutes: float = 10.0
    #: Wall-clock budget of this invocation in seconds (checkpoint, then return); None: no limit.
    max_seconds: float | None = None
    log_every: int = 50
    threads: int | None = None
    max_images: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: Fields a resumed run takes from the caller; every other field comes from the checkpoint
#: unless the caller names it in ``override`` (the schedule is a function of the config).
RUNTIME_FIELDS = ("precision", "channels_last", "compile", "checkpoint_every", "checkpoint_minutes",
                  "eval_minutes", "max_seconds", "log_every", "threads", "max_images")


def config_from_json(text: str) -> TrainConfig:
    """The :class:`TrainConfig` stored in a checkpoint (tolerates fields added since)."""
    raw = json.loads(text)
    known = {f for f in TrainConfig.__dataclass_fields__}
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
    return TrainConfig(**cfg)


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


def _rate_bits(likelihoods: list[Any]) -> Any:
    import torch

    return sum(torch.log2(lk).sum() for lk in likelihoods) * -1.0


def lr_at(config: TrainConfig, step: int) -> float:
    """Learning rate of ``step`` under the step schedule of ``config``."""
    return config.lr * config.lr_decay ** sum(step >= f * config.steps for f in config.lr_milestones)


def autocast(device: str, precision: str) -> Any:
    """The autocast context of ``precision`` ("bf16"; "fp32": no autocast; "auto": per device)."""
    import contextlib

    import torch

    if resolve_precision(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16)


def rd_loss(model: Any, x: Any, q: int, lam: float, precision: str = "fp32") -> tuple[Any, Any, Any]:
    """(loss, bpp, mse) of one batch at quality index ``q``; loss = lam * 255^2 * MSE + bpp (+ aux)."""
    import torch

    with autocast(x.device.type, precision):
        res = model(x, q)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    mse = torch.mean((res["x_hat"].float() - x) ** 2)
    bpp = _rate_bits(res["likelihoods"]) / pixels
    loss = lam * 255**2 * mse + bpp
    if "aux_likelihoods" in res:
        loss = loss + _rate_bits(res["aux_likelihoods"]) / pixels
    return loss, bpp, mse


def train_step(model: Any, opt: Any, x: Any, q: int, lam: float, precision: str) -> tuple[float, float, float]:
    """One optimiser step; returns (loss, bpp, mse) as floats."""
    import torch

    loss, bpp, mse = rd_loss(model, x, q, lam, precision)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item(), bpp.item(), mse.item()


#: The signal that asked the running training loop to checkpoint and return (None: none yet).
_STOP: dict[str, int | None] = {"signal": None}


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While active, SIGTERM/SIGINT make the training loop checkpoint and return.

    Handlers can only be installed from the main thread: the CLI installs them around the
    whole flow (its tasks may run in other threads), :func:`train_model` again when it
    runs in the main thread itself.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: Any) -> None:
        _STOP["signal"] = signum

    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _STOP["signal"] = None


@dataclass
class _Run:
    """Mutable state of a training run (what a checkpoint restores)."""

    model: Any
    opt: Any
    config: TrainConfig
    rng: random.Random
    step: int = 0
    pixels: int = 0
    stages: list[dict[str, Any]] = field(default_factory=list)
    best: float = float("inf")
    stage_t0: float = 0.0

    def update_stage(self, status: str) -> None:
        """Bring the current stage's record (steps, pixels, wall time) up to date."""
        stage = self.stages[-1]
        stage.update(to_step=self.step, status=status, seconds=round(time.time() - self.stage_t0, 1),
                     pixels=(self.step - stage["from_step"]) * self.config.batch_size * self.config.crop**2)


def _start_run(config: TrainConfig, device: str, *, init_from: str | None, resume: str | None,
               override: tuple[str, ...]) -> _Run:
    """A fresh run, one initialised from ``init_from``'s weights, or one restored from ``resume``."""
    import torch

    from recodec.codecs.learned.models import build_model

    state = torch.load(resume, map_location="cpu", weights_only=True) if resume else None
    if state is not None:
        saved = config_from_json(state["config"])
        keep = {f: getattr(config, f) for f in (*RUNTIME_FIELDS, *override)}
        config = replace(saved, **keep)
    torch.manual_seed(config.seed)
    model = build_model(config.model, config.n, config.m, len(config.lambdas)).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = _Run(model, opt, config, random.Random(config.seed))
    if state is not None:
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # a weights-only checkpoint resumes with a fresh optimizer at step 0
            opt.load_state_dict(state["optimizer"])
        run.step, run.pixels = int(state.get("step", 0)), int(state.get("pixels", 0))
        run.stages = json.loads(state.get("stages", "[]"))
        run.best = float(state.get("best", float("inf")))
        _set_rng(run.rng, state)
    elif init_from:
        init = torch.load(init_from, map_location="cpu", weights_only=True)
        model.load_state_dict(init["model"])
        # The weights' history stays on record; the step count and schedule start afresh.
        run.stages = [{**s, "before_init_from": True} for s in json.loads(init.get("stages", "[]"))]
    return run


def _rng_state(rng: random.Random) -> dict[str, Any]:
    import torch

    version, internal, gauss = rng.getstate()
    state: dict[str, Any] = {"rng_python": torch.tensor(internal, dtype=torch.int64),
                             "rng_torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(rng: random.Random, state: dict[str, Any]) -> None:
    import torch

    if "rng_python" in state:
        rng.setstate((3, tuple(int(v) for v in state["rng_python"]), None))
        torch.set_rng_state(state["rng_torch"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
    else:  # checkpoints written before RNG state was saved
        rng.seed(int(state.get("step", 0)))


def save_checkpoint(path: Path, run: _Run, status: str = "running") -> None:
    """Write ``run`` atomically (a crash never leaves a half-written checkpoint)."""
    import torch

    run.update_stage(status)
    state = {"model": run.model.state_dict(), "optimizer": run.opt.state_dict(), "step": run.step,
             "pixels": run.pixels, "config": json.dumps(asdict(run.config)),
             "stages": json.dumps(run.stages), "best": run.best, **_rng_state(run.rng)}
    save_atomic(state, path)


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half-written state."""
    import torch

    tmp = Path(path).with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def compact_checkpoint(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Copy a training checkpoint with the optimizer's moment estimates in bfloat16 (the repository copy).

    The weights, step, schedule and RNG stay exact; Adam's moments lose precision they do not need
    (8 significant bits of a running average), which roughly halves what a resumable state costs, so the
    copy kept in the repository stays under its 20 MB budget.  ``torch.optim.Adam.load_state_dict``
    casts them back to the parameters' dtype on resume.
    """
    import torch

    state = torch.load(src, map_location="cpu", weights_only=True)
    for per_param in state.get("optimizer", {}).get("state", {}).values():
        for key, value in per_param.items():
            if key != "step" and torch.is_tensor(value) and value.is_floating_point():
                per_param[key] = value.to(torch.bfloat16)
    save_atomic(state, dst)
    return {"path": str(dst), "bytes": Path(dst).stat().st_size, "source_bytes": Path(src).stat().st_size}


def train_model(data: str, out_dir: str, config: TrainConfig, *, init_from: str | None = None,
                resume: str | None = None, override: tuple[str, ...] = (),
                heldout: list[np.ndarray] | None = None) -> dict[str, Any]:
    """Train (or resume) a model on random crops of ``data``; returns a summary dict.

    ``out_dir/checkpoint.pt`` is written every ``checkpoint_every`` steps, every
    ``checkpoint_minutes``, at the end and on SIGTERM/SIGINT.  A run resumes from
    ``resume`` (or from ``out_dir/checkpoint.pt`` when it exists): model, optimizer, step,
    schedule (the checkpoint's config, except :data:`RUNTIME_FIELDS` and ``override``) and
    RNG state.  ``init_from`` only copies another checkpoint's weights.  With ``heldout``
    images, the held-out loss is logged every ``eval_minutes`` and ``best.pt`` kept.
    """
    if config.model == "rnn":
        return train_rnn(data, out_dir, config, override, resume=resume)
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ckpt_path = out / "checkpoint.pt"
    if resume is None and ckpt_path.exists():
        resume = str(ckpt_path)
    run = _start_run(config, device, init_from=init_from, resume=resume, override=override)
    config = run.config
    urls = list_images(data, split="train")[: config.max_images or None]
    if not urls:
        raise ValueError(f"no training images under {data}")
    images = [load_rgb(u) for u in urls]
    eval_batch = _eval_batch(heldout, device) if heldout and config.eval_minutes else None
    stage = {"from_step": run.step, "device": _device_name(device), "precision": resolve_precision(config.precision, str(device)),
             "threads": torch.get_num_threads(), "batch": config.batch_size, "crop": config.crop,
             "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    run.stages.append(stage)
    run.stage_t0 = time.time()
    with stop_on_signals():
        reason = _loop(run, images, device, out, eval_batch)
    save_checkpoint(ckpt_path, run, reason)
    return {"checkpoint": str(ckpt_path), "steps": run.step, "device": device, "images": len(urls),
            "seconds": round(sum(s.get("seconds", 0) for s in run.stages), 1), "pixels": run.pixels,
            "stages": run.stages, "stopped": reason, "interrupted": reason.startswith("signal"),
            "config": asdict(config)}


def train_rnn(data: str, out_dir: str, config: TrainConfig, given: tuple[str, ...] = (), *,
              resume: str | None = None) -> dict[str, Any]:
    """Train the recurrent codec (truncated BPTT; see :mod:`recodec.codecs.rnn.training`)."""
    from recodec.codecs.rnn.training import RnnTrainConfig, train

    urls = list_images(data, split="train")[: config.max_images or None]
    if not urls:
        raise ValueError(f"no training images under {data}")
    rnn = RnnTrainConfig(steps=config.steps, batch_size=config.batch_size, crop=config.crop,
                         lr=config.lr, seed=config.seed, threads=config.threads,
                         max_seconds=config.max_seconds, precision=config.precision, **config.extra)
    heldout = [load_rgb(u) for u in list_images(data, split="heldout")[:8]]
    summary = train([load_rgb(u) for u in urls], heldout, out_dir, rnn, given=tuple(given) + tuple(config.extra),
                    resume=resume)
    # The flow exports "checkpoint": for the rnn that is the best held-out model.
    best = summary["best"] if Path(summary["best"]).exists() else summary["checkpoint"]
    return {**summary, "checkpoint": best, "resume_checkpoint": summary["checkpoint"],
            "images": len(urls), "config": {**asdict(config), **summary["config"], "model": "rnn"}}


def _device_name(device: str) -> str:
    import platform

    import torch

    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)})"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _loop(run: _Run, images: list[np.ndarray], device: str, out: Path, eval_batch: Any) -> str:
    """Optimise until the schedule ends, the time budget runs out or a signal arrives."""
    import torch

    config, model, opt = run.config, run.model, run.opt
    step_fn = torch.compile(train_step) if config.compile else train_step
    log = (out / "train_log.jsonl").open("a")
    t0 = last_ckpt = last_eval = time.time()
    window: list[tuple[float, float]] = []
    model.train()
    reason = "done"
    while run.step < config.steps:
        if _STOP["signal"] is not None:
            reason = f"signal {_STOP['signal']}"
            break
        now = time.time()
        if config.max_seconds is not None and now - t0 >= config.max_seconds:
            reason = "time budget"
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(config, run.step)
        model.ste = run.step >= config.ste_from * config.steps
        q = run.rng.randrange(len(config.lambdas))
        x = torch.from_numpy(random_crops(images, config.batch_size, config.crop, run.rng)).to(device)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _, bpp, mse = step_fn(model, opt, x, q, config.lambdas[q], config.precision)
        run.step += 1
        run.pixels += x.shape[0] * x.shape[2] * x.shape[3]
        window.append((bpp, mse))
        if run.step % config.log_every == 0 or run.step == config.steps:
            _log(log, run, window, now - t0)
            window = []
        if eval_batch is not None and now - last_eval >= config.eval_minutes * 60:
            _evaluate_and_keep_best(run, eval_batch, out, log)
            last_eval = time.time()
        if run.step % config.checkpoint_every == 0 or now - last_ckpt >= config.checkpoint_minutes * 60:
            save_checkpoint(out / "checkpoint.pt", run)
            last_ckpt = time.time()
    log.close()
    return reason


def _log(log: Any, run: _Run, window: list[tuple[float, float]], seconds: float) -> None:
    psnr_db = [psnr_from_mse(max(m, 1e-10), 1.0) for _, m in window]
    log.write(json.dumps({
        "step": run.step, "lr": lr_at(run.config, run.step - 1), "seconds": round(seconds, 1),
        "pixels": run.pixels, "bpp": round(float(np.mean([b for b, _ in window])), 4),
        "psnr": round(float(np.mean(psnr_db)), 3),
    }) + "\n")
    log.flush()


def _eval_batch(images: list[np.ndarray], device: str, crop: int = 256) -> Any:
    """Centre crops of held-out images (one fixed batch) for the periodic held-out loss."""
    import torch

    crops = []
    for img in images:
        h, w = img.shape[:2]
        c = min(crop, h, w) // 64 * 64
        if c == crop:
            top, left = (h - c) // 2, (w - c) // 2
            crops.append(img[top:top + c, left:left + c].transpose(2, 0, 1) / 255.0)
    return torch.from_numpy(np.stack(crops).astype(np.float32)).to(device) if crops else None


def heldout_loss(model: Any, batch: Any, lambdas: tuple[float, ...]) -> dict[str, Any]:
    """Float model with rounded latents on ``batch``: mean loss and per-quality (bpp, PSNR)."""
    import torch

    was_training = model.training
    model.eval()
    points = []
    with torch.no_grad():
        for q, lam in enumerate(lambdas):
            loss, bpp, mse = rd_loss(model, batch, q, lam)
            points.append((float(loss), float(bpp), psnr_from_mse(max(float(mse), 1e-10), 1.0)))
    model.train(was_training)
    return {"loss": float(np.mean([p[0] for p in points])),
            "points": [{"quality": q + 1, "bpp": round(b, 4), "psnr": round(p, 3)}
                       for q, (_, b, p) in enumerate(points)]}


def _evaluate_and_keep_best(run: _Run, batch: Any, out: Path, log: Any) -> None:
    result = heldout_loss(run.model, batch, run.config.lambdas)
    log.write(json.dumps({"step": run.step, "heldout": result}) + "\n")
    log.flush()
    if result["loss"] < run.best:
        run.best = result["loss"]
        save_checkpoint(out / "best.pt", run)


def train_on_ray(data: str, out_dir: str, config: TrainConfig, *, ray_address: str | None = None,
                 **kwargs: Any) -> dict[str, Any]:
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
        return ray.get(task.remote(data, out_dir, config, **kwargs))
    finally:
        if started:
            ray.shutdown()


def checkpoint_from_shipped(weights: str, out: str) -> dict[str, Any]:
    """Write a weights-only training checkpoint (for ``init_from``) rebuilt from a shipped weights file."""
    import torch

    from recodec.digest import sha256_file
    from recodec.codecs.learned.recover import model_from_shipped

    state = torch.load(weights, map_location="cpu", weights_only=True)
    model, report = model_from_shipped(state)
    _fmt, n, m, qualities, hyper = (int(v) for v in state["meta"])
    config = TrainConfig(model="hyperprior" if hyper else "factorized", n=n, m=m)
    if len(config.lambdas) != qualities:
        raise ValueError(f"{weights}: {qualities} qualities, the default ladder has {len(config.lambdas)}")
    stage = {"recovered_from": f"{Path(weights).name} sha256:{sha256_file(weights)}", **report}
    torch.save({"model": model.state_dict(), "config": json.dumps(asdict(config)),
                "stages": json.dumps([stage])}, out)
    return stage


def export_weights(checkpoint: str, out_dir: str, calibration: list[np.ndarray], *,
                   name: str | None = None) -> dict[str, Any]:
    """Turn a training checkpoint into shipped weights (integer decoder) + SHA-256 pin."""
    if name == "rnn":
        from recodec.codecs.rnn.export import export_checkpoint as export_rnn

        return export_rnn(checkpoint, out_dir, calibration)
    from recodec.codecs.learned.export import export_checkpoint

    return export_checkpoint(checkpoint, out_dir, calibration, name=name)


def evaluate_rd(weights: str, images: list[np.ndarray], *, model: str = "hyperprior",
                qualities: list[int] | None = None) -> list[dict[str, float]]:
    """Mean bpp (whole file) and PSNR (decoded output) per quality over ``images``."""
    from recodec.codecs.learned.codec import codec_for_weights

    if model == "rnn":
        from recodec.codecs.rnn.codec import RnnCodec

        codec: Any = RnnCodec(weights=weights)
    else:
        codec = codec_for_weights(model, weights)
    codec.load()  # the ladder length comes from the weights
    qualities = qualities or list(range(1, int(codec.knob.high) + 1))
    points = []
    for q in qualities:
        bpps, psnrs = [], []
        for img in images:
            data = codec.encode(img, **{codec.knob.name: q})
            dec = codec.decode(data)
            bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
            psnrs.append(psnr(img, dec))
        points.append({"quality": q, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
    return points


def stage_table(stages: list[dict[str, Any]]) -> list[str]:
    """Markdown lines recording every training stage (steps, pixels, wall time, device)."""
    if not stages:
        return []
    lines = ["## Training stages", "", "| # | steps | pixels | wall s | device | precision, threads | batch x crop | ended |",
             "|---|---|---|---|---|---|---|---|"]
    for i, st in enumerate(stages, 1):
        if "recovered_from" in st:
            lines.append(f"| {i} | earlier training, weights recovered from {st['recovered_from']} "
                         "(see docs/learned.md) | | | | | | |")
            continue
        if "widened" in st:
            lines.append(f"| {i} | {st['widened']} | | | | | | |")
            continue
        if "ladder_extension" in st:  # recodec.tasks.ladder: new rate points, every network frozen
            lines.append(f"| {i} | ladder extension, {st.get('ladder_steps')} steps on lambdas "
                         f"{', '.join(str(x) for x in st['ladder_extension'])} (networks frozen) "
                         f"| {st.get('pixels', 0) / 1e6:.1f} M | {st.get('seconds')} | {st.get('device')} "
                         f"| {st.get('precision')}, {st.get('threads')} | {st.get('batch')} x {st.get('crop')}^2 "
                         f"| {st.get('status')} |")
            continue
        lines.append(f"| {i} | {st.get('from_step')} -> {st.get('to_step')} | {st.get('pixels', 0) / 1e6:.1f} M "
                     f"| {st.get('seconds')} | {st.get('device')} | {st.get('precision')}, {st.get('threads')} "
                     f"| {st.get('batch')} x {st.get('crop')}^2 | {st.get('status')} |")
    total = sum(st.get("pixels", 0) for st in stages)
    wall = sum(st.get("seconds", 0) for st in stages)
    return lines + ["", f"Total recorded: {total / 1e6:.1f} M pixels, {wall:.0f} s of wall time.", ""]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit arrays (peak 255)."""
    return metrics_psnr(a, b, 255.0)


def write_model_card(path: str, *, summary: dict[str, Any], export: dict[str, Any],
                     rd_points: list[dict[str, float]], eval_images: list[str], data: str,
                     notes: str = "") -> str:
    """Write the Markdown model card next to the weights; returns its path."""
    cfg = summary["config"]
    if cfg["model"] == "rnn":
        from recodec.codecs.rnn.card import write_card

        return write_card(path, summary=summary, export=export, rd_points=rd_points,
                          eval_images=[Path(u).name for u in eval_images], data=data, notes=notes)
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
    lines += stage_table(summary.get("stages", []))
    if notes:
        lines += ["## Notes", "", notes, ""]
    Path(path).write_text("\n".join(lines))
    return path
