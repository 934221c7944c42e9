"""The #18 GAN bar on a second held-out satellite set: NAIP RGB of nine other years.

``../shared/data/satellite-train/naip_m_4709963_se_14_1_*.tif`` are the quarter-quad of the devset
NAIP scene in 2009-2019 (never used to train the generative decoders).  Two 256^2 crops per year
(centre and top-left), bands 1-3, hyperprior qualities 1 and 2; the bar as
``benchmarks/generative_eval.py`` computes it (``bar``).  Results: docs/generative.md.

    python benchmarks/generative_naip_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generative_eval import DATA, bar, measure, summarise  # noqa: E402


def main() -> None:
    """Print the bar rows for qualities 1 and 2."""
    import torch

    from recodec.codecs import get_codec
    from recodec.formats.source import read_image

    torch.set_num_threads(1)
    hyper, gan = get_codec("hyperprior"), get_codec("hyperprior-gan").decoder_for({"realism": 1.0})
    rows = []
    for path in sorted((DATA / "satellite-train").glob("naip_m_*.tif")):
        scene = read_image(path.read_bytes()).array[..., :3]
        h, w = scene.shape[:2]
        for top, left in ((h // 2 - 128, w // 2 - 128), (40, 40)):
            img = np.ascontiguousarray(scene[top:top + 256, left:left + 256])
            for q in (1, 2):
                data = hyper.encode(img, quality=q)
                plain = hyper.decode(data)
                rows.append({"set": "naip", "setting": f"q{q} mse", "image": path.name,
                             **measure(img, plain, len(data))})
                rows.append({"set": "naip", "setting": f"q{q} gan r=1", "image": path.name,
                             **measure(img, gan.generate_rgb(plain, quality=q), len(data))})
    for row in bar(summarise(rows), "naip", [1, 2]):
        print(row)


if __name__ == "__main__":
    main()
