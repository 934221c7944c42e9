"""What the texture record costs per 256^2 block: the encoder's record, the generator, the calibration.

    python benchmarks/generative_texture_cost.py --out docs/results/generative_texture_cost.json

One torch thread, a 512^2 crop of a bundled photo (4 full blocks), hyperprior quality 1, realism 1;
the best of ``--repeats`` wall times per stage, divided by the block count.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

PHOTO = (Path(__file__).resolve().parents[1] / "samples" / "archive" / "photos"
         / "photo_gemini4_389225main_sw_1965_1024.jpg")


def best(fn: Callable[[], Any], repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Time each stage and print (and optionally write) seconds per block."""
    import torch
    from PIL import Image

    from recodec.codecs.generative import texture
    from recodec.codecs.generative.codecs import TrainedOnHyperprior
    from recodec.codecs.generative.decoding import generate, load_net, to_tensor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with Image.open(PHOTO) as im:
        img = np.asarray(im.convert("RGB"))[: args.size, : args.size].copy()
    h, w = img.shape[:2]
    blocks = int(np.prod(texture.grid(h, w)))
    x = to_tensor(TrainedOnHyperprior().decode(TrainedOnHyperprior().encode(img, quality=1)))
    net, _ = load_net("gan-hyperprior")
    view = generate(net, x, realism=1.0, quality=1)
    hint = texture.decode_hint(texture.encode_hint(img), h, w)
    seconds = {
        "record_encode": best(lambda: texture.encode_hint(img), args.repeats),
        "generator": best(lambda: generate(net, x, realism=1.0, quality=1), args.repeats),
        "calibration": best(lambda: texture.calibrate(x, view, hint, realism=1.0), args.repeats),
    }
    result = {"image": f"{PHOTO.name} {h}x{w}", "blocks": blocks, "threads": 1,
              "seconds_per_block": {k: round(v / blocks, 4) for k, v in seconds.items()}}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
