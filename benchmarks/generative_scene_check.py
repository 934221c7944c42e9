"""The #18 GAN bar on held-out satellite scenes outside the evaluation sets.

Two scene sets from ``../shared/data/satellite-train/`` (never used to train the generative decoders):

* ``naip``: the quarter-quad of the devset NAIP scene in nine other years (2009-2019), bands 1-3,
  two 256^2 crops per year (centre and top-left);
* ``landsat8``: a true-colour composite of the cloudy Landsat 8 scene (bands 4, 3, 2, uint16,
  stretched to 8 bits between the 1st and 99th percentile of all three), a 2 x 2 grid of crops.

Hyperprior qualities 1 and 2; the bar as ``benchmarks/generative_eval.py`` computes it
(``bar``: geometric means).  Results: docs/generative.md.

    python benchmarks/generative_scene_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import DATA, bar, grid_crops, measure, spread, summarise  # noqa: E402

SCENES = DATA / "satellite-train"


def naip_crops() -> Iterator[tuple[str, np.ndarray]]:
    """(name, 256^2 RGB crop): centre and top-left of each other NAIP year."""
    from recodec.formats.source import read_image

    for path in sorted(SCENES.glob("naip_m_*.tif")):
        scene = read_image(path.read_bytes()).array[..., :3]
        h, w = scene.shape[:2]
        for top, left in ((h // 2 - 128, w // 2 - 128), (40, 40)):
            yield f"{path.name}@{top},{left}", np.ascontiguousarray(scene[top:top + 256, left:left + 256])


def stretch_to_8bit(bands: list[np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8 of three bands, linearly stretched between their joint 1st and 99th percentile."""
    rgb = np.stack([b.astype(np.float64) for b in bands], axis=2)
    lo, hi = np.percentile(rgb, [1, 99])
    return np.clip((rgb - lo) / max(hi - lo, 1e-9) * 255 + 0.5, 0, 255).astype(np.uint8)


def landsat8_crops() -> Iterator[tuple[str, np.ndarray]]:
    """(name, 256^2 RGB crop): a 2 x 2 grid of the cloudy Landsat 8 scene's true-colour composite."""
    from recodec.formats.source import read_image

    bands = [read_image((SCENES / f"l8_cloudy_B{b}.tif").read_bytes()).array[:, :, 0] for b in (4, 3, 2)]
    yield from (("l8_cloudy_B432" + pos, crop) for pos, crop in grid_crops(stretch_to_8bit(bands), 256, 2))


def main() -> None:
    """Print the bar rows and the per-image spread for qualities 1 and 2 of each scene set."""
    import torch

    from recodec.codecs import get_codec

    torch.set_num_threads(1)
    hyper, gan = get_codec("hyperprior"), get_codec("hyperprior-gan").decoder_for({"realism": 1.0})
    for set_name, crops in (("naip", naip_crops()), ("landsat8", landsat8_crops())):
        rows = []
        for name, img in crops:
            for q in (1, 2):
                data = hyper.encode(img, quality=q)
                plain = hyper.decode(data)
                rows.append({"set": set_name, "setting": f"q{q} mse", "image": name, **measure(img, plain, len(data))})
                rows.append({"set": set_name, "setting": f"q{q} gan r=1", "image": name,
                             **measure(img, gan.generate_rgb(plain, quality=q), len(data))})
        bars = bar(summarise(rows), set_name, [1, 2])
        for row in bars:
            print(row)
        print(spread({"bar_lowest_two": bars, "rows": rows}), flush=True)


if __name__ == "__main__":
    main()
