"""Rate-distortion of the learned codecs against JPEG, WebP, AVIF and JPEG XL on held-out photos.

bpp counts every byte of each file; PSNR is computed on the decoded RGB output (8-bit).
Held-out images: the devset photos plus the held-out split of the training folders
(``recodec.tasks.train.is_heldout``), which training never sees.

    python benchmarks/learned_rd.py --out docs/results/learned_rd.json --plot docs/img/learned_rd.png
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all channels, peak 255."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def pillow_codec(fmt: str, **opts: object) -> Callable[[np.ndarray, int], tuple[bytes, np.ndarray]]:
    """Encode/decode through Pillow with a quality setting."""
    from PIL import Image

    def run(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format=fmt, quality=quality, **opts)
        data = buf.getvalue()
        with Image.open(io.BytesIO(data)) as im:
            return data, np.asarray(im.convert("RGB"))
    return run


def jxl_codec(img: np.ndarray, distance: float) -> tuple[bytes, np.ndarray]:
    """JPEG XL through imagecodecs (libjxl), effort 7."""
    import imagecodecs

    data = imagecodecs.jpegxl_encode(img, distance=distance, effort=7)
    return data, np.asarray(imagecodecs.jpegxl_decode(data))


def learned_codec(name: str) -> Callable[[np.ndarray, int], tuple[bytes, np.ndarray]]:
    """One of recodec's learned codecs with its shipped weights."""
    from recodec.codecs.registry import get_codec

    codec = get_codec(name)

    def run(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        data = codec.encode(img, quality=quality)
        return data, codec.decode(data)
    return run


def heldout_images(limit: int | None) -> list[tuple[str, np.ndarray]]:
    """(name, RGB array) of the devset photos and the held-out training split."""
    from recodec.tasks.train import list_images, load_rgb

    urls = sorted(str(p) for p in (DATA / "devset").glob("photo_*") if p.suffix in (".png", ".jpg"))
    urls += list_images(str(DATA / "train"), split="heldout")
    urls = urls[:limit] if limit else urls
    return [(Path(u).name, load_rgb(u)) for u in urls]


SWEEPS: dict[str, tuple[Callable[..., tuple[bytes, np.ndarray]] | None, list[float]]] = {
    "jpeg-420": (None, [10, 20, 30, 40, 50, 60, 70, 80, 90, 95]),
    "webp": (None, [5, 15, 30, 50, 70, 85, 95]),
    "avif": (None, [20, 35, 50, 60, 70, 80, 90]),
    "jxl": (jxl_codec, [6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.6]),
    "hyperprior": (None, [1, 2, 3, 4, 5, 6]),
    "factorized": (None, [1, 2, 3, 4, 5, 6]),
}


def codec_fn(name: str) -> Callable[..., tuple[bytes, np.ndarray]]:
    """The encode+decode function of a benchmarked codec."""
    if name == "jpeg-420":
        return pillow_codec("JPEG", subsampling="4:2:0", optimize=True)
    if name == "webp":
        return pillow_codec("WEBP", method=6)
    if name == "avif":
        return pillow_codec("AVIF", speed=6, subsampling="4:2:0")
    if name == "jxl":
        return jxl_codec
    return learned_codec(name)


def measure(images: list[tuple[str, np.ndarray]], codecs: list[str]) -> dict[str, list[dict[str, float]]]:
    """Mean bpp / PSNR per setting per codec (per-image averages, equal weight per image)."""
    curves: dict[str, list[dict[str, float]]] = {}
    for name in codecs:
        fn = codec_fn(name)
        points = []
        t0 = time.time()
        for setting in SWEEPS[name][1]:
            bpps, psnrs = [], []
            for _, img in images:
                data, out = fn(img, setting)
                bpps.append(len(data) * 8 / (img.shape[0] * img.shape[1]))
                psnrs.append(psnr(img, out))
            points.append({"setting": setting, "bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))})
        curves[name] = points
        print(f"{name}: {time.time() - t0:.1f} s", flush=True)
    return curves


def bd_rates(curves: dict[str, list[dict[str, float]]], anchor: str = "jpeg-420") -> dict[str, float]:
    """BD-rate (%) of every curve against ``anchor`` (recodec.rd.bd_rate, PCHIP)."""
    from recodec.rd import bd_rate

    a = curves[anchor]
    if anchor not in curves:
        return {}
    return {name: float(bd_rate([p["bpp"] for p in a], [p["psnr"] for p in a],
                                [p["bpp"] for p in c], [p["psnr"] for p in c]))
            for name, c in curves.items() if name != anchor}


def plot(curves: dict[str, list[dict[str, float]]], path: str, title: str) -> None:
    """RD plot (PSNR vs bpp) of every curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    for name, pts in curves.items():
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], "o-", label=name, markersize=3)
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_xlim(0, 2.0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codecs", default=",".join(SWEEPS))
    ap.add_argument("--limit", type=int, default=None, help="at most this many images")
    ap.add_argument("--out", default=None, help="write curves and BD-rates as JSON")
    ap.add_argument("--plot", default=None, help="write a PNG plot")
    ap.add_argument("--merge", default=None, help="JSON of an earlier run whose curves are kept")
    args = ap.parse_args()
    images = heldout_images(args.limit)
    print(f"{len(images)} held-out images: {', '.join(n for n, _ in images)}", flush=True)
    curves = json.loads(Path(args.merge).read_text())["curves"] if args.merge else {}
    curves.update(measure(images, args.codecs.split(",")))
    result = {"images": [n for n, _ in images], "curves": curves, "bd_rate_vs_jpeg_420": bd_rates(curves)}
    print(json.dumps(result["bd_rate_vs_jpeg_420"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(curves, args.plot, f"{len(images)} held-out photos")


if __name__ == "__main__":
    main()
