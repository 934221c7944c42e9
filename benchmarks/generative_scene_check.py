"""The #18 GAN bar on satellite scenes outside the evaluation sets.

Three scene sets (none in ``benchmarks/generative_eval.py``'s sets):

* ``naip``: the quarter-quad of the devset NAIP scene in the held-out years of
  ``satellite-train/`` (:data:`recodec.codecs.generative.scenes.NAIP_TRAIN_YEARS` are trained on
  since session 14), bands 1-3, two 256^2 crops per year (centre and top-left);
* ``landsat8``: a true-colour composite of the cloudy Landsat 8 scene of ``satellite-train/``
  (bands 4, 3, 2, stretched to 8 bits between the 1st and 99th percentile of all three), a 2 x 2
  grid of crops.  Held out for the generators up to session 13; the session-14 generator trained
  on this scene's composites, so for it this set is *seen*;
* ``landsat8-rgb16``: the devset's other Landsat 8 scene (``l8_rgb16.tif``, 60 m, never trained
  on), stretched the same way, its four corner crops.

Hyperprior qualities 1 and 2; the bar as ``benchmarks/generative_eval.py`` computes it
(``bar``: geometric means).  Results: docs/generative.md.

    python benchmarks/generative_scene_check.py [--crops docs/img]   # also side-by-side crops per set
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import DATA, bar, grid_crops, measure, save_crops, spread, summarise  # noqa: E402

SCENES = DATA / "satellite-train"
Crops = list[tuple[str, np.ndarray]]


def naip_crops() -> Crops:
    """(name, 256^2 RGB crop): centre and top-left of each held-out NAIP year."""
    from recodec.codecs.generative.scenes import naip_scenes

    out = []
    for name, scene in naip_scenes(SCENES, heldout=True):
        h, w = scene.shape[:2]
        for top, left in ((h // 2 - 128, w // 2 - 128), (40, 40)):
            out.append((f"{name}@{top},{left}", np.ascontiguousarray(scene[top:top + 256, left:left + 256])))
    return out


def landsat8_crops() -> Crops:
    """(name, 256^2 RGB crop): a 2 x 2 grid of the cloudy Landsat 8 scene's true-colour composite."""
    from recodec.codecs.generative.scenes import landsat8_composite

    return [("l8_cloudy_B432" + pos, crop) for pos, crop in grid_crops(landsat8_composite(SCENES, (4, 3, 2)), 256, 2)]


def corner_crops(a: np.ndarray, size: int = 256) -> Crops:
    """(position, crop) of the four ``size``^2 corners of ``a``."""
    h, w = a.shape[:2]
    return [(f"@{t},{l}", np.ascontiguousarray(a[t:t + size, l:l + size]))
            for t in (0, h - size) for l in (0, w - size)]


def landsat8_rgb16_crops() -> Crops:
    """(name, 256^2 RGB crop): the four corners of the devset's 16-bit Landsat 8 RGB, stretched to 8 bits."""
    from recodec.codecs.generative.scenes import stretch_to_8bit
    from recodec.formats.source import read_image

    a = read_image((DATA / "devset" / "l8_rgb16.tif").read_bytes()).array
    return [("l8_rgb16" + pos, crop) for pos, crop in corner_crops(stretch_to_8bit([a[..., i] for i in range(3)]))]


def scene_sets() -> dict[str, Crops]:
    """{set name: crops} of the three scene sets."""
    return {"naip": naip_crops(), "landsat8": landsat8_crops(), "landsat8-rgb16": landsat8_rgb16_crops()}


def main() -> None:
    """Print the bar rows and the per-image spread for qualities 1 and 2 of each scene set."""
    import torch

    from recodec.codecs import get_codec
    from recodec.codecs.generative.codecs import TrainedOnHyperprior
    from recodec.codecs.learned import bitstream

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crops", type=Path, help="save each set's first crop at quality 1 side by side here (PNG)")
    args = p.parse_args()
    torch.set_num_threads(1)
    hyper, gan = TrainedOnHyperprior(), get_codec("hyperprior-gan").decoder_for({"realism": 1.0})
    for set_name, crops in scene_sets().items():
        rows = []
        for i, (name, img) in enumerate(crops):
            for q in (1, 2):
                data = gan.encode(img, quality=q)  # the hyperprior's tiles plus the texture extension
                plain, plain_bytes = hyper.decode(data), len(bitstream.without_extensions(data))
                views = {f"q{q} mse": (plain, plain_bytes), f"q{q} gan r=1": (gan.decode(data), len(data)),
                         f"q{q} gan r=1 no hint": (gan.generate_rgb(plain, quality=q), plain_bytes)}
                rows += [{"set": set_name, "setting": k, "image": name, **measure(img, v, n)} for k, (v, n) in views.items()]
                if args.crops and i == 0 and q == 1:
                    args.crops.mkdir(parents=True, exist_ok=True)
                    save_crops(img, views, list(views), args.crops / f"generative_texture_{set_name}.png")
        bars = bar(summarise(rows), set_name, [1, 2])
        for row in bars:
            print(row)
        print(spread({"bar_lowest_two": bars, "rows": rows}), flush=True)


if __name__ == "__main__":
    main()
