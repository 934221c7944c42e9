"""How the GAN decoder's realism knob acts: HF energy ratio and PSNR against realism, per quality.

``train``: 10 random 256^2 crops of training photos (seeded); ``naip``: the centre crops of the
nine NAIP years in ``../shared/data/satellite-train`` (held out).  Hyperprior qualities 1-5,
realism 0 (the MSE decoder), 0.25, 0.4, 0.5, 0.6, 0.75, 1.  Results: docs/generative.md.

    python benchmarks/generative_realism_curve.py train
    python benchmarks/generative_realism_curve.py naip
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import DATA, measure  # noqa: E402

REALISMS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)


def crops(which: str) -> list[np.ndarray]:
    """The 256^2 RGB crops of the chosen set."""
    from recodec.formats.source import read_image
    from recodec.tasks.train import list_images, load_rgb

    out = []
    if which == "train":
        rng = random.Random(7)
        for url in rng.sample(list_images(str(DATA / "train"), split="train"), 10):
            a = load_rgb(url)
            y, x = rng.randrange(0, a.shape[0] - 256), rng.randrange(0, a.shape[1] - 256)
            out.append(np.ascontiguousarray(a[y:y + 256, x:x + 256, :3]))
        return out
    for path in sorted((DATA / "satellite-train").glob("naip_m_*.tif")):
        a = read_image(path.read_bytes()).array[..., :3]
        h, w = a.shape[:2]
        out.append(np.ascontiguousarray(a[h // 2 - 128:h // 2 + 128, w // 2 - 128:w // 2 + 128]))
    return out


def main() -> None:
    """Print one line per quality: bpp, then fine / mid HF ratio and PSNR at every realism."""
    import torch

    from recodec.codecs import get_codec
    from recodec.codecs.generative.codecs import TrainedOnHyperprior

    torch.set_num_threads(1)
    hyper, gan = TrainedOnHyperprior(), get_codec("hyperprior-gan")
    images = crops(sys.argv[1] if len(sys.argv) > 1 else "train")
    for q in (1, 2, 3, 4, 5):
        acc: dict[float, list[dict[str, float]]] = {r: [] for r in REALISMS}
        for img in images:
            data = hyper.encode(img, quality=q)
            plain = hyper.decode(data)
            for r in REALISMS:
                view = plain if r == 0 else gan.decoder_for({"realism": r}).generate_rgb(plain, quality=q)
                acc[r].append(measure(img, view, len(data)))
        cells = [f"r={r}: fine {np.mean([m['hf_fine'] for m in ms]):.2f} mid {np.mean([m['hf_mid'] for m in ms]):.2f} "
                 f"psnr {np.mean([m['psnr'] for m in ms]):.2f}" for r, ms in acc.items()]
        print(f"q{q} bpp {np.mean([m['bpp'] for m in acc[0.0]]):.3f} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
