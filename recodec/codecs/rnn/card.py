"""Model card of the shipped ``rnn`` weights (Markdown, written next to the weights)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def loss_line(cfg: dict[str, Any]) -> str:
    """The card's loss line: L1 of every prefix, plus the MS-SSIM term when the last stage had one."""
    line = "- loss: sum over iterations of the mean |x - x_hat_k| (L1 of every prefix)"
    weight = float(cfg.get("ms_ssim_weight") or 0)
    if weight:
        line += (f" + {weight:g} x (1 - MS-SSIM(x_hat_k, x)) in the last stage (from step "
                 f"{cfg.get('lr_restart_step', 0)}, lr restarted there)")
    return line


def _precision(summary: dict[str, Any]) -> str:
    """The autocast the run used (cards of runs before "precision" existed read the old bf16 flag)."""
    cfg = summary["config"]
    return str(summary.get("precision") or ("bf16" if cfg.get("bf16", True) else "fp32"))


def write_card(path: str, *, summary: dict[str, Any], export: dict[str, Any], rd_points: list[dict[str, float]],
               eval_images: list[str], data: str, notes: str = "") -> str:
    """Write the card: architecture, training run (steps, pixels, wall time, device), RD points."""
    cfg = summary["config"]
    pixels = summary.get("pixels") or int(summary["steps"]) * int(cfg["batch_size"]) * int(cfg["crop"]) ** 2
    lines = [
        f"# Model card: {export['file']}",
        "",
        f"- model: `rnn` (Toderici et al. 2016/2017, additive ConvGRU), {cfg['iterations']} iterations x "
        f"{cfg['bits']} bits per 16x16 block, state {cfg['hid']} channels",
        f"- weights: `{export['file']}`, {export['bytes']} bytes, SHA-256 `{export['sha256']}`",
        f"- training data: `{data}` ({summary.get('images', '?')} images; held-out split excluded)",
        f"- steps: {summary['steps']}, batch {cfg['batch_size']} x {cfg['crop']}^2 "
        f"crops, {pixels / 1e6:.0f} M pixels seen, Adam lr {cfg['lr']} (halved every {cfg['lr_halving']} steps), "
        f"truncated BPTT every {cfg['tbptt']} iterations, autocast {_precision(summary)}, "
        f"channels_last {cfg['channels_last']}, seed {cfg['seed']}",
        f"- wall time: {float(summary['seconds']) / 3600:.2f} h on {summary['device']} "
        f"({summary.get('device_note', 'one thread, niced, on a 2-core box shared with 7 other jobs')})",
        loss_line(cfg),
        "",
        f"## RD points on {len(eval_images)} held-out images (bpp = whole file, PSNR on decoded RGB)",
        "",
        "| iterations | bpp | PSNR dB |",
        "|---|---|---|",
    ]
    lines += [f"| {p['quality']} | {p['bpp']:.4f} | {p['psnr']:.2f} |" for p in rd_points]
    lines += ["", "Held-out images: " + ", ".join(eval_images), ""]
    if notes:
        lines += ["## Notes", "", notes, ""]
    Path(path).write_text("\n".join(lines))
    return path
