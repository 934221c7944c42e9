"""Rate-distortion of the learned codecs against JPEG, WebP, AVIF and JPEG XL on held-out photos.

bpp counts every byte of each file; PSNR is computed on the decoded RGB output (8-bit).
Held-out images: the devset photos plus the held-out split of the training folders
(``recodec.tasks.train.is_heldout``), which training never sees.

    python benchmarks/learned_rd.py --out docs/results/learned_rd.json --plot docs/img/learned_rd.png
    python benchmarks/learned_rd.py --checkpoint CKPT --codecs hyperprior,factorized
    python benchmarks/learned_rd.py --codecs hyperprior+refine200 --merge docs/results/learned_rd.json

A curve named ``CODEC+refineN`` encodes with ``refine=N`` (encoder-side latent refinement).

With ``--checkpoint`` the learned codecs use weights exported from that training checkpoint,
and per quality the float model is measured too, with noisy latents (the training
relaxation: ``y + U(-1/2, 1/2)``, rate from the densities) and with rounded latents (what
the codec codes; rate estimated from the densities), beside the integer decoder's real
files.  The float PSNR is computed on the float output clamped to [0, 1] and rounded to
8 bits, like the codec's.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all channels, peak 255."""
    from recodec.metrics import psnr as metrics_psnr

    return metrics_psnr(a, b, 255.0)


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


#: Weights file of the learned codecs (None: the shipped weights); set by ``--checkpoint``.
WEIGHTS: dict[str, str] = {}


def split_variant(name: str) -> tuple[str, dict[str, int]]:
    """("hyperprior", {"refine": 100}) for a curve named ``hyperprior+refine100``; no suffix: no params."""
    base, _, variant = name.partition("+refine")
    return base, ({"refine": int(variant)} if variant else {})


def learned_codec(name: str) -> Callable[[np.ndarray, int], tuple[bytes, np.ndarray]]:
    """One of recodec's learned codecs with the shipped (or ``--checkpoint``-exported) weights;
    ``NAME+refineN`` encodes with N iterations of latent refinement."""
    from recodec.codecs.learned.codec import codec_for_weights
    from recodec.codecs.registry import get_codec

    base, params = split_variant(name)
    codec = codec_for_weights(base, WEIGHTS["path"]) if WEIGHTS else get_codec(base)

    def run(img: np.ndarray, quality: int) -> tuple[bytes, np.ndarray]:
        data = codec.encode(img, quality=quality, **params)
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
    "hyperprior": (None, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    "factorized": (None, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    # The hyperprior at encoder effort refine=100 (recodec.codecs.learned.refine): same decoder.
    "hyperprior+refine100": (None, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
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


_FNS: dict[str, Callable[..., tuple[bytes, np.ndarray]]] = {}


def _point(task: tuple[str, float, np.ndarray]) -> tuple[float, float]:
    """(bpp, PSNR) of one image at one setting of one codec (codec built once per process)."""
    name, setting, img = task
    fn = _FNS.get(name) or _FNS.setdefault(name, codec_fn(name))
    data, out = fn(img, setting)
    return len(data) * 8 / (img.shape[0] * img.shape[1]), psnr(img, out)


def _init_worker(weights: dict[str, str]) -> None:
    import torch

    WEIGHTS.update(weights)
    torch.set_num_threads(1)


def measure(images: list[tuple[str, np.ndarray]], codecs: list[str],
            jobs: int = 1) -> dict[str, list[dict[str, float]]]:
    """Mean bpp / PSNR per setting per codec (per-image averages, equal weight per image);
    ``jobs`` > 1 spreads the encodes over that many one-thread processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = (ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                initializer=_init_worker, initargs=(dict(WEIGHTS),)) if jobs > 1 else None)
    curves: dict[str, list[dict[str, float]]] = {}
    for name in codecs:
        t0 = time.time()
        settings = SWEEPS[split_variant(name)[0]][1]
        tasks = [(name, setting, img) for setting in settings for _, img in images]
        results = list(pool.map(_point, tasks)) if pool else [_point(t) for t in tasks]
        per = len(images)
        curves[name] = [{"setting": setting,
                         "bpp": float(np.mean([r[0] for r in results[i * per:(i + 1) * per]])),
                         "psnr": float(np.mean([r[1] for r in results[i * per:(i + 1) * per]]))}
                        for i, setting in enumerate(settings)]
        print(f"{name}: {time.time() - t0:.1f} s", flush=True)
    if pool:
        pool.shutdown()
    return curves


def float_points(model, img: np.ndarray, q: int, noisy: bool, hyper: bool) -> tuple[float, float]:
    """(estimated bpp, PSNR) of the float model on one image at quality index ``q``."""
    import torch

    from recodec.codecs.learned.models import gaussian_bin_probability

    h, w = img.shape[:2]
    padded = np.pad(img, ((0, -h % 64), (0, -w % 64), (0, 0)), mode="edge")
    x = torch.from_numpy(padded.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]

    def quant(v: torch.Tensor) -> torch.Tensor:
        return v + torch.empty_like(v).uniform_(-0.5, 0.5) if noisy else torch.round(v)

    with torch.no_grad():
        y = model.analysis(x, q)
        if hyper:
            z = quant(model.h_a(y))
            scale, mu = model.hyper_params(z)
            r = quant(y - mu)
            y_hat = r + mu
            bits = -torch.log2(gaussian_bin_probability(r, scale)).sum() - torch.log2(model.density_z(z)).sum()
        else:
            y_hat = quant(y)
            bits = -torch.log2(model.factorized_likelihood(y_hat, q)).sum()
        x_hat = model.g_s(y_hat * model.inv_gain(q))[0, :, :h, :w]
    out = torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return float(bits) / (h * w), psnr(img, out)


def measure_float(images: list[tuple[str, np.ndarray]], checkpoint: str, kind: str) -> list[dict[str, float]]:
    """Per quality: mean float bpp/PSNR with noisy and with rounded latents."""
    import torch

    from recodec.codecs.learned.models import build_model
    from recodec.tasks.train import config_from_json

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = config_from_json(state["config"])
    model = build_model(cfg.model, cfg.n, cfg.m, len(cfg.lambdas))
    model.load_state_dict(state["model"])
    model.eval()
    torch.manual_seed(0)
    rows = []
    for q in range(len(cfg.lambdas)):
        row: dict[str, float] = {"setting": q + 1}
        for mode in ("noisy", "rounded"):
            # The factorized codec reuses the transforms with its own (factorized) prior.
            pts = [float_points(model, img, q, mode == "noisy", kind == "hyperprior") for _, img in images]
            row[f"{mode}_bpp"] = float(np.mean([p[0] for p in pts]))
            row[f"{mode}_psnr"] = float(np.mean([p[1] for p in pts]))
        rows.append(row)
    return rows


def export_for_benchmark(checkpoint: str, out_dir: str) -> str:
    """Export ``checkpoint`` (calibrated on training images) and return the weights path."""
    from recodec.codecs.learned.export import export_checkpoint
    from recodec.tasks.train import list_images, load_rgb

    calibration = [load_rgb(u) for u in list_images(str(DATA / "train"), split="train")[:8]]
    return export_checkpoint(checkpoint, out_dir, calibration, name="hyperprior")["path"]


def float_vs_integer(floats: list[dict[str, float]], ints: list[dict[str, float]]) -> list[dict[str, float]]:
    """Rows of the per-quality comparison table (float noisy / rounded, integer decoder)."""
    rows = []
    for f, i in zip(floats, ints):
        rows.append({**f, "integer_bpp": i["bpp"], "integer_psnr": i["psnr"],
                     "integer_minus_rounded_db": i["psnr"] - f["rounded_psnr"]})
    return rows


def bd_rates(curves: dict[str, list[dict[str, float]]], anchor: str = "jpeg-420") -> dict[str, float]:
    """BD-rate (%) of every curve against ``anchor`` (recodec.rd.bd_rate, PCHIP)."""
    from recodec.rd import bd_rate

    if anchor not in curves:
        return {}
    a = curves[anchor]
    return {name: float(bd_rate([p["bpp"] for p in a], [p["psnr"] for p in a],
                                [p["bpp"] for p in c], [p["psnr"] for p in c]))
            for name, c in curves.items() if name != anchor}


REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "results" / "compressai_kodak_published.json"


def plot(curves: dict[str, list[dict[str, float]]], path: str, title: str) -> None:
    """RD plot (PSNR vs bpp) of every curve, plus CompressAI's published Kodak curves (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for name, pts in curves.items():
        ax.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], "o-", label=name, markersize=3)
    if REFERENCE.exists():  # other images (Kodak): a reference for the shape, not a comparison
        for name, c in json.loads(REFERENCE.read_text())["curves"].items():
            ax.plot(c["bpp"], c["psnr"], "--", label=name + ", published", linewidth=1, alpha=0.7)
    ax.set_xlabel("bits per pixel (whole file)")
    ax.set_ylabel("PSNR (dB, RGB)")
    ax.set_xlim(0, 2.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not on them
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
    ap.add_argument("--merge", default=None, help="JSON of an earlier run whose curves (and records) are kept")
    ap.add_argument("--checkpoint", default=None, help="training checkpoint: export it and measure its float model")
    ap.add_argument("--export-dir", default=None, help="with --checkpoint: keep the exported weights here")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1, help="encode in this many one-thread processes")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    images = heldout_images(args.limit)
    print(f"{len(images)} held-out images: {', '.join(n for n, _ in images)}", flush=True)
    # A merge keeps the earlier run's other records (checkpoint, float_vs_integer) too.
    earlier = json.loads(Path(args.merge).read_text()) if args.merge else {}
    curves = earlier.get("curves", {})
    codecs = args.codecs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            WEIGHTS["path"] = export_for_benchmark(args.checkpoint, args.export_dir or tmp)
        curves.update(measure(images, codecs, args.jobs))
    result = {**earlier, "images": [n for n, _ in images], "curves": curves,
              "bd_rate_vs_jpeg_420": bd_rates(curves)}
    if args.checkpoint:
        result["checkpoint"] = args.checkpoint
        result["float_vs_integer"] = {
            kind: float_vs_integer(measure_float(images, args.checkpoint, kind), curves[kind])
            for kind in ("hyperprior", "factorized") if kind in codecs}
        for kind, rows in result["float_vs_integer"].items():
            print(kind)
            for r in rows:
                print("  " + "  ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)
    print(json.dumps(result["bd_rate_vs_jpeg_420"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if args.plot:
        plot(curves, args.plot, f"{len(images)} held-out photos")


if __name__ == "__main__":
    main()
