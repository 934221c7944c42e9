"""Would spatially adaptive bits help the rnn codec?  A simulation, not a codec change.

Each iteration, every 16x16 block whose update would gain less than ``tau`` squared error (8-bit
units) per code bit is skipped: the decoder gets zeros for it (no information) and its pixels keep
the previous reconstruction.  Rate is modelled as 0.97 coded bits per sent code bit (what the
shipped context model achieves) plus one flag bit per block and 32 bits per iteration.  Prints the
RD points per ``tau``, MS-SSIM / PSNR BD-rates against libjpeg-turbo 4:2:0 (as benchmarks/rnn_rd.py
computes them) and the envelope over ``tau >= 0``.  Results: docs/rnn.md.

    python benchmarks/rnn_adaptive_rate.py
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learned_rd import heldout_images  # noqa: E402
from rnn_rd import average, bd_rate_in_range, jpeg_points, ms_ssim, psnr  # noqa: E402

from recodec.codecs.rnn.codec import RnnCodec  # noqa: E402
from recodec.codecs.rnn.integer import IntDecoder  # noqa: E402
from recodec.codecs.rnn.runtime import BLOCK, RECON_FRAC, _block_sse, _gate, _padded  # noqa: E402

ENT = 0.97  # coded bits per raw code bit of the shipped context model
TAUS = [-1e9, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0]  # -1e9: every block sent (the shipped codec)


def sim(rt: Any, tile: np.ndarray, taus: list[float]) -> dict[float, list[dict[str, float]]]:
    """RD points after each iteration of one tile, for each ``tau``."""
    padded = _padded(tile)
    x = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    target = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float64))
    valid = torch.zeros(target.shape[1:], dtype=torch.float64)
    valid[:tile.shape[0], :tile.shape[1]] = 1
    return {tau: _stream(rt, tile, x, target, valid, tau) for tau in taus}


@torch.no_grad()
def _stream(rt: Any, tile: np.ndarray, x: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
            tau: float) -> list[dict[str, float]]:
    """One simulated stream: per iteration, send the blocks that gain more than ``tau`` per bit."""
    h, w = tile.shape[:2]
    blocks = (x.shape[2] // BLOCK) * (x.shape[3] // BLOCK)
    recon, es, ds = IntDecoder.initial(tuple(x.shape)), [None, None], [None, None]
    bits, points = 0.0, []

    def sse(r: torch.Tensor) -> torch.Tensor:
        return _block_sse(IntDecoder.pixels(r), target, valid)

    for k in range(rt.arch.iterations):
        t, es = rt.encoder(x - (recon / 2.0**RECON_FRAC).to(torch.float32), es)
        u = (t >= 0).to(torch.float64) * 2 - 1
        trial, _ = rt.decoder.step(u, [s.clone() if s is not None else None for s in ds], recon)
        send = ((sse(recon) - sse(trial)) > tau * rt.arch.bits).to(torch.float64)
        new, ds = rt.decoder.step(u * send, ds, recon)  # skipped blocks: zeros (no information)
        recon = _gate((sse(new) <= sse(recon)).to(torch.uint8) * send.to(torch.uint8), new, recon)
        bits += float(send.sum()) * rt.arch.bits * ENT + blocks + 32
        out = IntDecoder.pixels(recon)[:, :h, :w].permute(1, 2, 0).numpy()
        points.append({"setting": k + 1, "bpp": bits / (h * w), "psnr": psnr(tile, out), "ms_ssim": ms_ssim(tile, out)})
    return points


def envelope(curves: list[list[dict[str, float]]], metric: str) -> list[dict[str, float]]:
    """The best quality reached at each rate over all curves."""
    out, best = [], -math.inf
    for p in sorted((p for c in curves for p in c), key=lambda p: p["bpp"]):
        if p[metric] > best:
            out.append(p)
            best = p[metric]
    return out


def main() -> None:
    """Simulate every tau on 8 held-out 384^2 centre crops and print the comparison."""
    torch.set_num_threads(1)
    rt = RnnCodec().runtime
    jp, rn = [], {t: [] for t in TAUS}
    for name, img in heldout_images(8):
        hh, ww, side = img.shape[0], img.shape[1], 384
        crop = np.ascontiguousarray(img[(hh - side) // 2:(hh - side) // 2 + side,
                                        (ww - side) // 2:(ww - side) // 2 + side, :3])
        jp.append(jpeg_points(crop))
        for t, pts in sim(rt, crop, TAUS).items():
            rn[t].append(pts)
        print(name, flush=True)
    anchor = average(jp)
    for t in TAUS:
        curve = average(rn[t])
        print(t, [round(p["bpp"], 3) for p in curve], [round(p["ms_ssim"], 4) for p in curve])
        print("   BD ms_ssim", bd_rate_in_range(anchor, curve, "ms_ssim")["bd_rate"],
              "psnr", bd_rate_in_range(anchor, curve, "psnr")["bd_rate"])
    for metric in ("ms_ssim", "psnr"):
        best = envelope([average(rn[t]) for t in TAUS if t >= 0], metric)
        print("envelope", metric, bd_rate_in_range(anchor, best, metric))


if __name__ == "__main__":
    main()
