"""Training of the generative decoders on the CPU (or a GPU when there is one), resumable.

Three recipes, one loop shape (``python -m recodec.codecs.generative.training --model M OUT``
or ``benchmarks/train_generative.py``):

* ``restore-jpeg``: :class:`.nets.Restorer` on (crop, JPEG decode of the crop) pairs, JPEG
  quality uniform in 10..50, 4:2:0 (3/4 of the time) or 4:4:4, drawn afresh every step.
* ``diffusion-hyperprior``: the same network on (crop, hyperprior reconstruction) pairs at
  the two lowest rate points, made once with the shipped codec (integer decoder) and cached.
* ``gan-hyperprior``: :class:`.nets.Generator` against :class:`.nets.PatchDiscriminator` on
  the same pairs; loss ``MSE + 0.1 (1 - MS-SSIM) + realism * (adv + FM + band energy)``.

The crop bank (random 256^2 crops of the training split of DATA; the held-out split of
:func:`recodec.tasks.train.is_heldout` and the devset are never used; with ``--scenes``, also
crops of the satellite views of :mod:`.scenes` that may be trained on) is cached in OUT.
Checkpoints (network, optimisers, step, RNG, stages) go to ``OUT/checkpoint.pt`` every few
minutes, at the end and on SIGTERM; ``--resume`` continues one.  ``--export`` writes the
shipped weights, the SHA-256 pin and the model card's stage list.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from recodec.codecs.generative.decoding import WEIGHTS_DIR
from recodec.precision import PRECISIONS, resolve_precision

RECIPES: dict[str, dict[str, Any]] = {
    "restore-jpeg": {"kind": "restorer", "pairs": "jpeg", "lr": 5e-4},
    "diffusion-hyperprior": {"kind": "restorer", "pairs": "hyperprior", "lr": 5e-4},
    "gan-hyperprior": {"kind": "generator", "pairs": "hyperprior", "lr": 2e-4},
}
BANK_SIZE = 256
#: Rate points of the hyperprior the decoders are trained on: the five lowest (about 0.1-0.4 bpp on
#: held-out photos; qualities 4-5 are the two lowest of the ladder before it was extended downwards).
HYPERPRIOR_QUALITIES = (1, 2, 3, 4, 5)
JPEG_QUALITIES = (10, 50)
#: Relative frequency of each of HYPERPRIOR_QUALITIES in the hyperprior batches (``--pair-weights``;
#: None: uniform; recorded per stage).
PAIR_WEIGHTS: tuple[float, ...] | None = None
#: Weight of the GAN's band-energy term (``--band-weight``; recorded per stage).
BAND_WEIGHT = 2.0
#: Block size (px) over which the band-energy term matches energies (``--band-tile``; recorded per
#: stage); None: the whole crop.  Why blocks: a whole-crop match lets grain in a flat sky pay for
#: missing texture elsewhere in the crop; per block, flat areas must stay flat.
BAND_TILE: int | None = None
#: Also match each band's mean absolute value (``--band-shape``; recorded per stage).  Why: energy
#: alone is met as well by a few sharp specks as by texture; for the same energy, specks have a
#: smaller mean absolute value, so matching both asks for the original's spread of detail.
BAND_SHAPE = False
#: Crops of each training scene added to the bank by ``--scenes`` (random 256^2 crops).
SCENE_CROPS = 8
#: Share of the batch samples drawn from scene crops when the bank has some (``--scene-share``;
#: recorded per stage).  Why not their share of the bank: a few scenes among a thousand photo
#: crops would hardly be seen.
SCENE_SHARE = 0.3
#: Floor added to band energies before the log (in [0, 1] units squared: about 8-bit quantisation noise).
BAND_FLOOR = 1e-6


def crop_bank(data: str, count: int, seed: int = 0) -> np.ndarray:
    """``count`` random 256^2 RGB crops (at most 4 per image) from the training split of ``data``."""
    from recodec.tasks.train import list_images, load_rgb

    rng = np.random.default_rng(seed)
    paths = list_images(data, split="train")
    count = min(count, 4 * len(paths))
    crops = []
    for i in range(count):
        img = load_rgb(paths[i % len(paths)] if i < len(paths) else paths[rng.integers(len(paths))])
        h, w = img.shape[:2]
        if h < BANK_SIZE or w < BANK_SIZE:
            continue
        top, left = rng.integers(h - BANK_SIZE + 1), rng.integers(w - BANK_SIZE + 1)
        crops.append(img[top:top + BANK_SIZE, left:left + BANK_SIZE])
    return np.stack(crops)


def jpeg_roundtrip(crop: np.ndarray, quality: int, subsampling: str) -> np.ndarray:
    """What a JPEG viewer shows for ``crop`` coded at ``quality`` (Pillow, libjpeg-turbo)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(crop).save(buf, "JPEG", quality=int(quality), subsampling=subsampling)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def hyperprior_pairs(bank: np.ndarray, qualities: tuple[int, ...] = HYPERPRIOR_QUALITIES) -> np.ndarray:
    """The decode of every bank crop at each quality (Q, N, S, S, 3) by the hyperprior the decoders are pinned to."""
    from recodec.codecs.generative.codecs import TrainedOnHyperprior

    codec = TrainedOnHyperprior()
    return np.stack([np.stack([codec.decode(codec.encode(c, quality=q, tile=256)) for c in bank])
                     for q in qualities])


def load_pairs(out: Path, data: str, pairs: str, count: int, scenes: Path | None = None) -> dict[str, np.ndarray]:
    """The crop bank (and hyperprior reconstructions) cached in ``out/pairs-<kind>.npz``.

    Reconstructions made with other hyperprior weights than the decoders' pin
    (:data:`.codecs.HYPERPRIOR_SHA256`), or at other qualities than :data:`HYPERPRIOR_QUALITIES`,
    are made again (same crops), so a decoder fine-tuned after the pin moves sees the new output.  ``scenes`` (``satellite-train/``)
    appends :data:`SCENE_CROPS` crops of each training scene once, flagged in ``scene``; only
    the new crops are decoded.
    """
    cache = out / f"pairs-{pairs}.npz"
    arrays: dict[str, np.ndarray] = {}
    if cache.exists():
        with np.load(cache) as z:
            arrays = dict(z)
    changed = "bank" not in arrays
    if changed:
        arrays = {"bank": crop_bank(data, count)}
    if scenes is not None and "scene" not in arrays:
        from recodec.codecs.generative.scenes import scene_bank

        extra = scene_bank(Path(scenes), SCENE_CROPS, BANK_SIZE)
        arrays["scene"] = np.r_[np.zeros(len(arrays["bank"]), bool), np.ones(len(extra), bool)]
        arrays["bank"] = np.concatenate([arrays["bank"], extra])
        changed = True
    if pairs == "hyperprior":
        changed = update_recon(arrays) or changed
    if changed:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    return arrays


def update_recon(arrays: dict[str, np.ndarray]) -> bool:
    """Make the hyperprior reconstructions of ``arrays["bank"]`` that are missing or stale; True if any were."""
    from recodec.codecs.generative.codecs import HYPERPRIOR_SHA256

    weights = np.frombuffer(bytes.fromhex(HYPERPRIOR_SHA256), dtype=np.uint8)
    qualities = np.array(HYPERPRIOR_QUALITIES)
    if not ("recon" in arrays and np.array_equal(arrays.get("weights"), weights)
            and np.array_equal(arrays.get("qualities", np.array([1, 2])), qualities)):
        arrays.update(recon=hyperprior_pairs(arrays["bank"]), weights=weights, qualities=qualities)
        return True
    done = arrays["recon"].shape[1]
    if done == len(arrays["bank"]):
        return False
    arrays["recon"] = np.concatenate([arrays["recon"], hyperprior_pairs(arrays["bank"][done:])], axis=1)
    return True


def sample_batch(arrays: dict[str, np.ndarray], pairs: str, batch: int, crop: int, rng: np.random.Generator,
                 *, pair_weights: tuple[float, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(originals, degraded, rate levels): uint8 (B, crop, crop, 3) random crops and flips, float (B,).

    The rate level is :func:`.nets.rate_level` of the hyperprior quality of each pair (0 for JPEG pairs);
    ``pair_weights`` is the relative frequency of each quality (None: uniform).
    """
    from recodec.codecs.generative.nets import rate_level

    bank = arrays["bank"]
    xs, ys, levels = [], [], []
    for _ in range(batch):
        i = pick_crop(arrays, rng)
        top, left = rng.integers(BANK_SIZE - crop + 1, size=2)
        x = bank[i, top:top + crop, left:left + crop]
        level = 0.0
        if pairs == "jpeg":
            y = jpeg_roundtrip(np.ascontiguousarray(x), rng.integers(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1),
                               "4:2:0" if rng.random() < 0.75 else "4:4:4")
        else:
            k = rng.integers(len(arrays["recon"])) if pair_weights is None else rng.choice(
                len(arrays["recon"]), p=np.asarray(pair_weights) / np.sum(pair_weights))
            y = arrays["recon"][k, i, top:top + crop, left:left + crop]
            level = rate_level(int(arrays.get("qualities", np.array(HYPERPRIOR_QUALITIES))[k]))
        if rng.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        xs.append(x)
        ys.append(y)
        levels.append(level)
    return np.stack(xs), np.stack(ys), np.asarray(levels, dtype=np.float32)


def pick_crop(arrays: dict[str, np.ndarray], rng: np.random.Generator) -> int:
    """Index of a random bank crop: a scene crop with probability :data:`SCENE_SHARE` when the bank has any."""
    scene = arrays.get("scene")
    if scene is None or not scene.any() or scene.all():
        return int(rng.integers(len(arrays["bank"])))
    group = np.flatnonzero(scene if rng.random() < SCENE_SHARE else ~scene)
    return int(group[rng.integers(len(group))])


def to_batch(a: np.ndarray, device: str) -> Any:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1] on ``device``."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float().div(255.0).to(device)


def restorer_loss(net: Any, x: Any, y: Any) -> Any:
    """InDI loss: MSE of ``F(x_t, y, t)`` to ``x``; a quarter of the batch is the noise-free t = 1 mean view."""
    import torch

    from recodec.codecs.generative.nets import NOISE_SCALE

    b = x.shape[0]
    t = torch.rand(b, device=x.device).clamp_min(1e-3)
    mean_view = torch.rand(b, device=x.device) < 0.25
    t = torch.where(mean_view, torch.ones_like(t), t)
    sigma = (NOISE_SCALE * t * (~mean_view).float()).view(-1, 1, 1, 1)
    tv = t.view(-1, 1, 1, 1)
    x_t = (1 - tv) * x + tv * y + sigma * torch.randn_like(x)
    return torch.mean((net(x_t, y, t).float() - x) ** 2)


def gan_fake(gen: Any, y: Any, rate: Any) -> tuple[Any, Any]:
    """(generated batch, realism per image): realism uniform in [0, 1], full realism 30% of the time."""
    import torch

    b = y.shape[0]
    realism = torch.rand(b, device=y.device)
    realism = torch.where(torch.rand(b, device=y.device) < 0.3, torch.ones_like(realism), realism)
    noise = torch.randn((b, gen.noise_channels, *y.shape[2:]), device=y.device)
    return gen(y, noise, realism, rate), realism


def disc_loss(disc: Any, x: Any, y: Any, fake: Any) -> Any:
    """Hinge loss of the conditional patch discriminator."""
    import torch.nn.functional as F

    return F.relu(1 - disc(x, y)[0]).mean() + F.relu(1 + disc(fake, y)[0]).mean()


def band_target(x: Any, y: Any, realism: Any) -> Any:
    """Log band energies the output should have at ``realism``: the MSE decode's at 0, the original's at 1.

    Why: interpolating the target (not only scaling the loss by realism) makes the knob a dial;
    a realism-scaled loss alone is met by a network that jumps to full detail at small realism.
    """
    r = realism.view(-1, *([1] * (1 if BAND_TILE is None else 3)))
    return (1 - r) * log_bands(y) + r * log_bands(x)


def log_bands(img: Any) -> Any:
    """Log band energies of a batch, per crop or per :data:`BAND_TILE` block; with :data:`BAND_SHAPE`
    also twice the log mean absolute band-pass (energy units), after the energies."""
    import torch

    from recodec.hfenergy import band_energies

    energy = torch.log(band_energies(img, BAND_TILE) + BAND_FLOOR)
    if not BAND_SHAPE:
        return energy
    return torch.cat([energy, 2 * torch.log(band_energies(img, BAND_TILE, power=1) + BAND_FLOOR ** 0.5)], 1)


def gen_loss(disc: Any, x: Any, y: Any, fake: Any, realism: Any) -> tuple[Any, dict[str, float]]:
    """Generator loss: distortion always; adversarial and feature matching scaled by realism; band energy."""
    import torch

    from recodec.codecs.losses import box_ms_ssim_loss

    with torch.no_grad():
        real_feats = disc(x, y)[1]
        target = band_target(x, y, realism)
    logits, feats = disc(fake, y)
    r = realism.view(-1, 1, 1, 1)
    adv = -(logits * r).mean()
    fm = sum(((f - rf).abs() * r).mean() for f, rf in zip(feats, real_feats)) / len(feats)
    band = ((log_bands(fake.float()) - target) ** 2).mean()
    mse = torch.mean((fake.float() - x) ** 2)
    loss = 100 * mse + 0.1 * box_ms_ssim_loss(fake.float(), x) + 0.02 * adv + 0.5 * fm + BAND_WEIGHT * band
    return loss, {k: float(v.detach()) for k, v in (("mse", mse), ("adv", adv), ("fm", fm), ("band", band))}


class Stop:
    """Set by SIGTERM: the loop checkpoints and returns at the next step."""

    requested = False

    @classmethod
    def install(cls) -> None:
        """Route SIGTERM to a clean stop (main thread only)."""
        signal.signal(signal.SIGTERM, lambda *_: setattr(cls, "requested", True))


def build(recipe: str, width: int, device: str) -> dict[str, Any]:
    """Networks and optimisers of a recipe (the GAN adds its discriminator)."""
    import torch

    from recodec.codecs.generative.nets import PatchDiscriminator, build_net

    spec = RECIPES[recipe]
    net = build_net(spec["kind"], width).to(device)
    parts = {"net": net, "opt": torch.optim.Adam(net.parameters(), lr=spec["lr"], betas=(0.5, 0.9)
                                                 if spec["kind"] == "generator" else (0.9, 0.999))}
    if spec["kind"] == "generator":
        parts["ema"] = copy.deepcopy(net).requires_grad_(False)
        parts["disc"] = PatchDiscriminator(width).to(device)
        parts["opt_d"] = torch.optim.Adam(parts["disc"].parameters(), lr=spec["lr"], betas=(0.5, 0.9))
    return parts


def save_checkpoint(path: Path, parts: dict[str, Any], meta: dict[str, Any], rng: np.random.Generator) -> None:
    """Atomically write networks, optimisers, step, stages and RNG states."""
    import torch

    state = {k: v.state_dict() for k, v in parts.items()}
    state["meta"] = json.dumps(meta)
    state["rng"] = json.dumps(rng.bit_generator.state)
    state["torch_rng"] = torch.get_rng_state()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, parts: dict[str, Any]) -> tuple[dict[str, Any], np.random.Generator]:
    """Restore ``parts`` from ``path``; returns (meta, numpy RNG)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for k, v in parts.items():
        # A checkpoint from before the generator's average: the average starts at the network.
        v.load_state_dict(state[k] if k in state else state["net"])
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return json.loads(state["meta"]), rng


def generator_from_file(path: Path, part: str = "ema") -> Any:
    """The GAN generator (eval mode, CPU) of a training checkpoint (its ``part``: ``ema``, the
    exported average, or ``net``) or of a shipped weights file, for checks of runs in progress."""
    import torch

    from recodec.codecs.generative.nets import build_net

    state = torch.load(path, map_location="cpu", weights_only=True)
    width = state["width"] if "width" in state else json.loads(state["meta"])["width"]
    net = build_net("generator", int(width), rate_input=True)
    net.load_state_dict(state.get(part, state["net"]))
    return net.eval()


def shipped_history(recipe: str, path: Path, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """{"step", "stages"} of a shipped weights file (looked up in ``stages.json`` by SHA-256), else {}.

    Why: a fine-tune warm-started from the shipped file continues its step count and keeps its
    training stages on the model card.
    """
    from recodec.digest import sha256_file

    cards_path = weights_dir / "stages.json"
    card = json.loads(cards_path.read_text()).get(recipe, {}) if cards_path.exists() else {}
    if not card or card.get("sha256") != sha256_file(path):
        return {}
    return {"step": int(card["steps"]), "stages": list(card["stages"])}


def train_step(recipe: str, parts: dict[str, Any], x: Any, y: Any, precision: str,
               rate: Any = None) -> dict[str, float]:
    """One optimiser step (two for the GAN: discriminator, then generator against the updated one)."""
    import torch

    def autocast() -> Any:
        return torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=resolve_precision(precision, x.device.type) == "bf16")

    logs: dict[str, float] = {}
    if RECIPES[recipe]["kind"] == "restorer":
        with autocast():
            loss = restorer_loss(parts["net"], x, y)
    else:
        with autocast():
            fake, realism = gan_fake(parts["net"], y, rate)
            d_loss = disc_loss(parts["disc"], x, y, fake.detach())
        parts["opt_d"].zero_grad(set_to_none=True)
        d_loss.backward()
        parts["opt_d"].step()
        logs["d"] = float(d_loss.detach())
        parts["disc"].requires_grad_(False)  # the generator's step must not move the discriminator
        with autocast():
            loss, more = gen_loss(parts["disc"], x, y, fake, realism)
        parts["disc"].requires_grad_(True)
        logs.update(more)
    parts["opt"].zero_grad(set_to_none=True)
    loss.backward()
    parts["opt"].step()
    if "ema" in parts:
        update_ema(parts["ema"], parts["net"])
    return {"loss": float(loss.detach()), **logs}


#: Decay of the generator's exponential moving average (the exported network).
EMA_DECAY = 0.998


def update_ema(ema: Any, net: Any, decay: float = EMA_DECAY) -> None:
    """``ema <- decay ema + (1 - decay) net``, parameter by parameter.

    Why: a GAN generator's band energies swing from one step to the next; the average of
    the last few hundred steps is the stable network to ship (as in most GAN practice).
    """
    import torch

    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p, 1.0 - decay)


def train(recipe: str, out: Path, data: str, *, steps: int, batch: int = 8, crop: int = 128, width: int = 32,
          resume: bool = True, max_minutes: float | None = None, precision: str = "auto",
          bank: int = 600, checkpoint_minutes: float = 3.0, seed: int = 0,
          device: str | None = None, init_from: Path | None = None, lr: float | None = None,
          scenes: Path | None = None) -> dict[str, Any]:
    """Train ``recipe`` up to ``steps`` in ``out`` (resuming ``out/checkpoint.pt``); returns the meta.

    ``lr`` replaces the recipe's learning rate from this stage on (both optimisers): the end of a
    GAN run lowers it so that consecutive generators, and hence their average, agree.
    """
    import torch

    from recodec.codecs.generative.decoding import pick_device

    device = pick_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    arrays = load_pairs(out, data, RECIPES[recipe]["pairs"], bank, scenes)
    pairs_seconds = round(time.monotonic() - t0, 1)
    parts = build(recipe, width, device)
    ckpt = out / "checkpoint.pt"
    torch.manual_seed(seed)
    meta: dict[str, Any] = {"recipe": recipe, "width": width, "step": 0, "stages": []}
    rng = np.random.default_rng(seed)
    if resume and ckpt.exists():
        meta, rng = load_checkpoint(ckpt, parts)
    elif init_from is not None:  # warm start: the network only (same kind and width), fresh optimiser
        from recodec.codecs.generative.nets import widen_input

        for name in ("net", "ema") if "ema" in parts else ("net",):
            state = torch.load(init_from, map_location="cpu", weights_only=True)["net"]
            parts[name].load_state_dict(widen_input(state, parts[name]))
        meta["init_from"] = str(init_from)
        meta.update(shipped_history(recipe, Path(init_from)))
    for opt in (parts[k] for k in ("opt", "opt_d") if k in parts and lr is not None):
        for group in opt.param_groups:
            group["lr"] = lr
    stage = {"from_step": meta["step"], "to_step": meta["step"], "batch": batch, "crop": crop,
             "lr": parts["opt"].param_groups[0]["lr"],
             "pixels": 0, "wall_seconds": 0.0, "device": device, "precision": resolve_precision(precision, str(device)),
             "threads": torch.get_num_threads(), "pairs_seconds": pairs_seconds, "bank": len(arrays["bank"])}
    if RECIPES[recipe]["kind"] == "generator":
        stage.update(band_weight=BAND_WEIGHT, band_target="interpolated", rate_input=True, ema_decay=EMA_DECAY)
        if BAND_TILE is not None:
            stage["band_tile"] = BAND_TILE
        if BAND_SHAPE:
            stage["band_shape"] = True
    if "scene" in arrays:
        stage.update(scene_crops=int(arrays["scene"].sum()), scene_share=SCENE_SHARE)
    if PAIR_WEIGHTS is not None and RECIPES[recipe]["pairs"] == "hyperprior":
        stage["pair_weights"] = dict(zip(map(str, HYPERPRIOR_QUALITIES), PAIR_WEIGHTS))
    meta["stages"].append(stage)
    Stop.install()
    start = last_ckpt = time.monotonic()
    logs: dict[str, float] = {}
    while meta["step"] < steps and not Stop.requested:
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
        xb, yb, levels = sample_batch(arrays, RECIPES[recipe]["pairs"], batch, crop, rng, pair_weights=PAIR_WEIGHTS)
        logs = train_step(recipe, parts, to_batch(xb, device), to_batch(yb, device), precision,
                          torch.from_numpy(levels).to(device))
        meta["step"] += 1
        stage.update(to_step=meta["step"], pixels=stage["pixels"] + batch * crop * crop,
                     wall_seconds=round(time.monotonic() - start, 1))
        if meta["step"] % 50 == 0:
            print(json.dumps({"step": meta["step"], **{k: round(v, 5) for k, v in logs.items()}}), flush=True)
        if time.monotonic() - last_ckpt > 60 * checkpoint_minutes:
            save_checkpoint(ckpt, parts, meta, rng)
            last_ckpt = time.monotonic()
    save_checkpoint(ckpt, parts, meta, rng)
    return {**meta, "last": logs}


def export(recipe: str, out: Path, weights_dir: Path = WEIGHTS_DIR) -> str:
    """Write ``weights_dir/<recipe>.pt`` from ``out/checkpoint.pt``, pin it, record its stages; returns SHA-256."""
    import torch

    from recodec.codecs.weights import write_pinned

    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    meta = json.loads(state["meta"])
    net = state.get("ema", state["net"])  # the generator ships its moving average
    shipped = {"kind": RECIPES[recipe]["kind"], "width": int(meta["width"]),
               "net": {k: v.contiguous() for k, v in net.items()}}
    if RECIPES[recipe]["kind"] == "generator":
        from recodec.codecs.generative.nets import Generator

        shipped["rate_input"] = net["body.inp.weight"].shape[1] == Generator.input_channels(True)
    written = write_pinned(shipped, weights_dir, f"{recipe}.pt")
    digest, path = written["sha256"], Path(written["path"])
    cards_path = weights_dir / "stages.json"
    cards = json.loads(cards_path.read_text()) if cards_path.exists() else {}
    cards[recipe] = {"sha256": digest, "bytes": path.stat().st_size, "steps": meta["step"],
                     "stages": meta["stages"]}
    cards_path.write_text(json.dumps(cards, indent=2, sort_keys=True) + "\n")
    return digest


CARD_HEAD = """# Model cards: generative decoders

Written by `recodec.codecs.generative.training.write_card` from `stages.json` (do not edit by hand).
Architectures: `recodec/codecs/generative/nets.py`; evaluation: docs/generative.md.
Training data: the training split of `/work/shared/data/train` (CLIC 2025 validation, Unsplash
licence; CID22-512, CC BY-SA 4.0), file names with `CRC-32 % 10 == 0` held out, the devset never used.
Every file is loaded with `torch.load(..., weights_only=True)` after its SHA-256 is checked
against `pins.json`.
"""

RECIPE_TEXT = {
    "restore-jpeg": "Restorer (U-Net, width 32) on (crop, JPEG decode) pairs, quality 10-50, 4:2:0 / 4:4:4; "
                    "InDI loss (MSE of the clean-image prediction at t ~ U(0, 1], a quarter of each batch the "
                    "noise-free t = 1 mean view).",
    "diffusion-hyperprior": "Restorer (U-Net, width 32) on (crop, hyperprior decode at qualities 1-2 of the "
                            "6-point ladder, now qualities 4-5) pairs; "
                            "same loss as restore-jpeg.  Network warm-started from the restore-jpeg run at its "
                            "step 240; steps 0-764 on decodes of the earlier hyperprior weights (845bb0a7...), "
                            "764-2258 on the 6-point file 507e6bda... (its rate points are unchanged in the "
                            "9-point de54ef92...); not fine-tuned for the new qualities 1-3.",
    "gan-hyperprior": "Generator (U-Net residual, width 32, realism-scaled; from session 11 also rate-conditioned: "
                      "the stream's quality as an input channel) against a conditional spectral-norm PatchGAN; "
                      "loss 100 MSE + 0.1 (1 - box MS-SSIM) + realism x (0.02 hinge adversarial + 0.5 feature "
                      "matching) + w x log band-energy matching on the three DoG bands.  Stages 1-4 (steps "
                      "0-1569): pairs at qualities 1-2 of the earlier hyperprior weights (845bb0a7...), no rate "
                      "input, band target the original's with the term scaled by realism, w = 0.5 then 2.  "
                      "Stages 5-8 (session 10, steps 1569-10158): pairs at qualities 1-5 of the 9-point "
                      "hyperprior (de54ef92...), w = 10 then 30, checkpoint means (the file 27268abd...).  "
                      "Stages 9 onwards (session 11): warm start from 27268abd... with a zero-weight rate "
                      "channel and a fresh discriminator; band target interpolated by realism between the MSE "
                      "decode's and the original's log energies; the exported network is the generator's "
                      "moving average (decay 0.998); qualities 1-5 uniform; w, learning rate, crop and bank "
                      "per stage in the table.",
}


#: Stage entries shown in the card's "settings" column (those a stage recorded).
STAGE_SETTINGS = ("lr", "band_weight", "band_tile", "band_shape", "bank", "scene_crops", "scene_share",
                  "pair_weights", "band_target", "rate_input", "ema_decay")


def stage_settings(stage: dict[str, Any]) -> str:
    """The recorded recipe settings of one stage, ``name=value`` separated by commas ("-" when none)."""
    shown = [f"{k}={stage[k]}" for k in STAGE_SETTINGS if k in stage]
    return ", ".join(shown).replace("|", "/") or "-"


def write_card(weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Regenerate ``MODEL_CARD.md`` from ``stages.json``: per file its SHA-256, size, recipe and stages."""
    cards = json.loads((weights_dir / "stages.json").read_text())
    lines = [CARD_HEAD]
    for name, card in sorted(cards.items()):
        lines += [f"## {name}.pt", "", f"- SHA-256 `{card['sha256']}`, {card['bytes']} bytes, "
                  f"{card['steps']} optimiser steps in all", f"- recipe: {RECIPE_TEXT[name]}", "",
                  "| stage | steps | batch x crop | pixels | wall s | device | precision | threads | settings |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for i, st in enumerate(card["stages"], 1):
            lines.append(f"| {i} | {st['from_step']}-{st['to_step']} | {st['batch']} x {st['crop']}^2 | "
                         f"{st['pixels']:.3g} | {st['wall_seconds']:.0f} | {st['device']} | {st['precision']} | "
                         f"{st['threads']} | {stage_settings(st)} |")
        lines.append("")
    path = weights_dir / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def train_from_cli(data: str, out_dir: str, options: dict[str, Any]) -> dict[str, Any]:
    """``recodec train --model <recipe>``: train (resuming OUT/checkpoint.pt), export to OUT/weights."""
    import torch

    torch.set_num_threads(options.get("threads") or 1)
    out = Path(out_dir)
    meta = train(options["model"], out, data, steps=options.get("steps") or 4000,
                 batch=options.get("batch_size") or 8, crop=options.get("crop") or 128,
                 max_minutes=options.get("max_minutes"), precision=options.get("precision") or "auto",
                 seed=options.get("seed") or 0)
    weights = out / "weights"
    weights.mkdir(exist_ok=True)
    digest = export(options["model"], out, weights)
    write_card(weights)
    return {"model": options["model"], "step": meta["step"], "sha256": digest, "weights": str(weights)}


def main(argv: list[str] | None = None) -> None:
    """Command line: train (resuming) and optionally export one recipe."""
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, choices=sorted(RECIPES))
    p.add_argument("out", type=Path)
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[4] / "shared" / "data" / "train"))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--bank", type=int, default=600, help="crops in the bank (cached in OUT)")
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--precision", choices=PRECISIONS, default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fresh", action="store_true", help="ignore OUT/checkpoint.pt")
    p.add_argument("--init-from", type=Path, help="checkpoint.pt whose network starts a new run")
    p.add_argument("--lr", type=float, help="learning rate from this stage on (default: the recipe's, or the "
                   "resumed optimiser's)")
    p.add_argument("--band-weight", type=float, default=BAND_WEIGHT, help="GAN: weight of the band-energy term")
    p.add_argument("--band-tile", type=int, help="GAN: match band energies per block of this many px "
                   "(default: per crop)")
    p.add_argument("--band-shape", action="store_true", help="GAN: match the mean absolute band-pass too "
                   "(texture rather than specks)")
    p.add_argument("--pair-weights", help="hyperprior recipes: comma-separated relative frequency of each "
                   "of the qualities " + ",".join(map(str, HYPERPRIOR_QUALITIES)) + " (default uniform)")
    p.add_argument("--scenes", type=Path, help="also train on the satellite scenes of this satellite-train/ "
                   "folder (scenes.training_scenes; added to the cached bank once)")
    p.add_argument("--scene-share", type=float, default=SCENE_SHARE, help="share of samples drawn from scene crops")
    p.add_argument("--export", action="store_true", help="write the shipped weights, pin and stages afterwards")
    p.add_argument("--export-only", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    globals()["BAND_WEIGHT"] = args.band_weight
    globals()["BAND_TILE"] = args.band_tile
    globals()["BAND_SHAPE"] = args.band_shape
    globals()["SCENE_SHARE"] = args.scene_share
    if args.pair_weights:
        weights = tuple(float(v) for v in args.pair_weights.split(","))
        if len(weights) != len(HYPERPRIOR_QUALITIES) or min(weights) < 0 or not sum(weights):
            p.error(f"--pair-weights needs {len(HYPERPRIOR_QUALITIES)} non-negative numbers")
        globals()["PAIR_WEIGHTS"] = weights
    if not args.export_only:
        meta = train(args.model, args.out, args.data, steps=args.steps, batch=args.batch, crop=args.crop,
                     width=args.width, resume=not args.fresh, max_minutes=args.max_minutes,
                     precision=args.precision, bank=args.bank, init_from=args.init_from, lr=args.lr,
                     scenes=args.scenes)
        print(json.dumps({"done": meta["step"], "last": meta["last"]}), flush=True)
    if args.export or args.export_only:
        print(json.dumps({"exported": export(args.model, args.out), "card": str(write_card())}), flush=True)


if __name__ == "__main__":
    main()
