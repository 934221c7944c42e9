"""Where does a shipped learned codec lose quality?  Integer decoder vs float, by quantisation mode.

    python benchmarks/learned_ceiling.py [--weights recodec/codecs/learned/weights/hyperprior.pt]
    python benchmarks/learned_ceiling.py --sha256 4a5684bc65595d66...   # a retired release, by its SHA-256

Works from a shipped weights file alone (no training checkpoint needed): the float
synthesis is rebuilt by dequantising the integer ``g_s`` (weights / 2**wfrac, etc.), i.e.
exactly the network the integer decoder approximates.  On a 256^2 crop of the devset
astronaut photo, per quality, it prints the PSNR of

* ``integer``: the exact integer decoder on the rounded latents (what the codec decodes);
* ``float_rounded``: the dequantised float synthesis on the same rounded latents;
* ``float_noisy``: the float synthesis on ``y + U(-1/2, 1/2)`` (the training relaxation);
* ``continuous``: the float synthesis on the unquantised latent ``y``: the autoencoder's
  own ceiling, which no entropy model, quantiser or integer arithmetic can exceed.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset" / "photo_astronaut.png"


def float_synthesis(layers: list, y: torch.Tensor) -> torch.Tensor:
    """Run the dequantised float version of integer ``g_s`` layers on float latents."""
    from recodec.codecs.learned import integer as I

    h = y
    for layer in layers:
        if isinstance(layer, I.IntConv):
            shape = [1, -1, 1, 1] if layer.transposed else [-1, 1, 1, 1]
            w = layer.weight * torch.exp2(-layer.wfrac).view(shape)
            b = layer.bias * torch.exp2(-(layer.wfrac + layer.afrac_in))
            pad = w.shape[-1] // 2
            if layer.transposed:
                h = F.conv_transpose2d(h, w, b, stride=layer.stride, padding=pad, output_padding=layer.stride - 1)
            else:
                h = F.conv2d(h, w, b, stride=layer.stride, padding=pad)
            h = h.clamp_min(0) if layer.relu else h
        else:
            gamma = layer.gamma * 2.0**-layer.gfrac
            beta = layer.beta * 2.0 ** -(layer.gfrac + 2 * layer.sfrac)
            h = h * torch.sqrt(F.conv2d(h * h, gamma) + beta.view(1, -1, 1, 1))
    return h


def psnr_of(img: np.ndarray, out: torch.Tensor | np.ndarray) -> float:
    """PSNR (dB) of a float [0, 1] (1, 3, H, W) tensor or uint8 (H, W, 3) array against ``img``."""
    from recodec.metrics import psnr

    if isinstance(out, torch.Tensor):
        out = torch.round(out[0].clamp(0, 1) * 255).permute(1, 2, 0).numpy()
    return float(psnr(img, np.asarray(out, dtype=np.uint8), 255.0))


def main() -> None:
    """Command-line entry point."""
    from recodec.codecs.learned.codec import DEFAULT_WEIGHTS, WEIGHTS_DIR, load_runtime
    from recodec.codecs.weights import find_weights
    from recodec.codecs.learned.integer import MEAN_FRAC
    from recodec.tasks.train import load_rgb

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="a weights file with pins.json beside it")
    ap.add_argument("--sha256", help="instead: the shipped or retired file with this full SHA-256 (as a stream names it)")
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.sha256:
        rt = load_runtime(find_weights(args.sha256, WEIGHTS_DIR, "learned"), expected=args.sha256)
    else:
        rt = load_runtime(Path(args.weights))
    img = load_rgb(str(PHOTO))[: args.crop, : args.crop]
    x = torch.from_numpy(img.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    gain_frac = math.ldexp(1.0, -int(rt.gs.inv_gain_frac))
    print("quality  integer  float_rounded  float_noisy  continuous  (PSNR dB)")
    with torch.no_grad():
        for q in range(rt.qualities):
            y = rt.encoder.analysis(x, q).double()
            inv_gain = (rt.gs.inv_gain[q] * gain_frac).view(1, -1, 1, 1)
            if rt.hs is not None:
                _, mean = rt.hs(torch.round(rt.encoder.h_a(y.float())).to(torch.int64))
                mu = mean.double() / 2**MEAN_FRAC
                y_hat = torch.round(y - mu) + mu
                integer = rt.gs(torch.round(y - mu) * 2**MEAN_FRAC + mean, MEAN_FRAC, q)
            else:
                y_hat = torch.round(y)
                integer = rt.gs(y_hat, 0, q)
            noisy = y + torch.rand_like(y) - 0.5
            row = [psnr_of(img, integer.permute(1, 2, 0).numpy())]
            row += [psnr_of(img, float_synthesis(rt.gs.layers, v * inv_gain)) for v in (y_hat, noisy, y)]
            print(f"{q + 1:7d}  " + "  ".join(f"{v:11.2f}" for v in row), flush=True)


if __name__ == "__main__":
    main()
