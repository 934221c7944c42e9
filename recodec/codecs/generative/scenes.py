"""Satellite scenes for the generative decoders' training bank, and which scenes are held out.

The GAN decoder saw photos only until session 14, and its texture was not calibrated on satellite
scenes (docs/generative.md, "The bars").  These are the 8-bit RGB views of the remote-sensing
rasters in ``satellite-train/`` that may be trained on:

* NAIP: bands 1-3 of the quarter-quad in :data:`NAIP_TRAIN_YEARS`; the other years and the
  devset's 2020 scene are held out (one place at different dates: split by year, not by crop);
* Landsat 8 (the cloudy scene, 30 m): the band composites in :data:`LANDSAT8_COMPOSITES`, each
  stretched to 8 bits by :func:`stretch_to_8bit`.  The devset's other Landsat 8 scene
  (``l8_rgb16.tif``) and Landsat 7 scene stay held out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: NAIP years trained on; 2016-2019 (and the devset's 2020) are held out.
NAIP_TRAIN_YEARS = ("2009", "2010", "2012", "2014", "2015")
#: Band triples of the cloudy Landsat 8 scene shown as RGB: true colour, then false colours.
LANDSAT8_COMPOSITES = ((4, 3, 2), (5, 4, 3), (7, 6, 4), (6, 5, 2))


def stretch_to_8bit(bands: list[np.ndarray]) -> np.ndarray:
    """(H, W, 3) uint8 of three bands, linearly stretched between their joint 1st and 99th percentile."""
    rgb = np.stack([b.astype(np.float64) for b in bands], axis=2)
    lo, hi = np.percentile(rgb, [1, 99])
    return np.clip((rgb - lo) / max(hi - lo, 1e-9) * 255 + 0.5, 0, 255).astype(np.uint8)


def naip_year(path: Path) -> str:
    """The acquisition year of a NAIP file named ``naip_m_<quad>_<yyyymmdd>.tif``."""
    return path.stem.rsplit("_", 1)[-1][:4]


def naip_scenes(root: Path, *, heldout: bool) -> list[tuple[str, np.ndarray]]:
    """(name, RGB) of the NAIP years under ``root``: the held-out ones, or those trained on."""
    from recodec.formats.source import read_image

    paths = [p for p in sorted(root.glob("naip_m_*.tif")) if (naip_year(p) in NAIP_TRAIN_YEARS) != heldout]
    return [(p.name, np.ascontiguousarray(read_image(p.read_bytes()).array[..., :3])) for p in paths]


def landsat8_composite(root: Path, bands: tuple[int, int, int]) -> np.ndarray:
    """The cloudy Landsat 8 scene's ``bands`` as stretched 8-bit RGB."""
    from recodec.formats.source import read_image

    return stretch_to_8bit([read_image((root / f"l8_cloudy_B{b}.tif").read_bytes()).array[:, :, 0] for b in bands])


def training_scenes(root: Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB) of every scene view the decoders may train on."""
    views = naip_scenes(root, heldout=False)
    views += [(f"l8_cloudy_B{''.join(map(str, b))}", landsat8_composite(root, b)) for b in LANDSAT8_COMPOSITES]
    return views


def scene_bank(root: Path, per_scene: int, size: int, seed: int = 0) -> np.ndarray:
    """``per_scene`` random ``size``^2 crops of each of :func:`training_scenes` (N, size, size, 3) uint8;
    scenes smaller than a crop are skipped."""
    rng = np.random.default_rng(seed)
    crops = []
    for _, img in training_scenes(root):
        h, w = img.shape[:2]
        for _ in range(per_scene if h >= size and w >= size else 0):
            top, left = rng.integers(h - size + 1), rng.integers(w - size + 1)
            crops.append(img[top:top + size, left:left + size])
    return np.stack(crops)
