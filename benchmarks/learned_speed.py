"""Encode / decode throughput (megapixels per second) of the learned codecs on CPU and GPU.

    python benchmarks/learned_speed.py --size 1024 --threads 2

Encoding runs the float analysis transform on the chosen device; decoding runs the
exact integer synthesis (float64 on CPU, or CUDA with cuDNN disabled).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "devset" / "photo_astronaut.png"


def test_image(size: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB photo (the devset astronaut tiled), or noise if it is missing."""
    if PHOTO.exists():
        from PIL import Image

        with Image.open(PHOTO) as im:
            base = np.asarray(im.convert("RGB"))
        reps = (size // base.shape[0] + 1, size // base.shape[1] + 1, 1)
        return np.ascontiguousarray(np.tile(base, reps)[:size, :size])
    return np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)


def bench(name: str, device: str, img: np.ndarray, quality: int, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` encode and decode MP/s of one codec on one device."""
    from recodec.codecs.learned.codec import FactorizedCodec, HyperpriorCodec

    codec = {"hyperprior": HyperpriorCodec, "factorized": FactorizedCodec}[name](device=device)
    codec.load()
    data = codec.encode(img, quality=quality)  # warm-up (and the stream decoded below)
    codec.decode(data)
    enc, dec = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        codec.encode(img, quality=quality)
        enc.append(time.perf_counter() - t)
        t = time.perf_counter()
        codec.decode(data)
        dec.append(time.perf_counter() - t)
    mp = img.shape[0] * img.shape[1] / 1e6
    return {"codec": name, "device": device, "megapixels": mp, "quality": quality,
            "bpp": len(data) * 8 / (mp * 1e6), "encode_mp_s": mp / min(enc), "decode_mp_s": mp / min(dec)}


def main() -> None:
    """Command-line entry point."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quality", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--codecs", default="hyperprior,factorized")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    img = test_image(args.size)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [bench(c, d, img, args.quality, args.repeats) for d in devices for c in args.codecs.split(",")]
    for r in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
