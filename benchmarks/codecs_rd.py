"""Rate-distortion benchmark of the classical codecs over a folder of images.

    python benchmarks/codecs_rd.py DIR [--out docs/img] [--crop 256] [--json results.json]

For every image (read with :func:`recodec.formats.source.read_image`, centre-cropped to ``--crop``
pixels a side to bound CPU time) and every codec that can hold it, the codec's main knob is
swept over a fixed grid; each point is encoded, decoded, and measured with
:func:`recodec.metrics.compute_metrics` (PSNR against the declared bit depth's full scale,
SSIM; nodata pixels masked).  Lossless modes are measured for size only and checked to be
bit-exact.

BD-rates come from :func:`recodec.rd.bd_rate` (PCHIP, PSNR as quality):

- 8-bit images: against libjpeg-turbo 4:2:0 (``jpeg`` with its default subsampling).
- 16-bit images: against lossless zstd (``zstd-tiff``).  A lossless anchor offers every quality
  at one rate, so the BD-rate is the mean log-rate gap to it over a fixed PSNR interval
  (:data:`BD_INTERVAL_16BIT`, 50-70 dB, which every 16-bit curve spans): how much smaller than
  storing the data losslessly with zstd each codec is, on average over those qualities.

Outputs: one RD plot per image (PSNR and SSIM against bpp) in ``--out``, a JSON file of every
point, and Markdown tables on stdout (BD-rates and lossless compression ratios per image class).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from recodec.codecs import get_codec  # noqa: E402
from recodec.errors import CodecError  # noqa: E402
from recodec.formats.image import Image  # noqa: E402
from recodec.formats.source import read_image  # noqa: E402

EXTENSIONS = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp", ".jp2", ".j2k"}
ANCHOR_8BIT = ("jpeg", "jpeg 4:2:0")
ANCHOR_16BIT = ("zstd-tiff", "zstd lossless")
#: PSNR interval (dB) the 16-bit BD-rates against the lossless anchor are averaged over.
BD_INTERVAL_16BIT = (50.0, 70.0)


@dataclass(frozen=True)
class Sweep:
    """One RD curve to measure: a codec, a label, fixed params and a grid of knob values."""

    label: str
    codec: str
    knob_values: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)


def lossy_sweeps(bits: int) -> list[Sweep]:
    """The lossy curves for data of ``bits`` bits (grids chosen to span ~30-48 dB on 8-bit, ~55-80 dB on 16-bit)."""
    quality = (40, 65, 85, 95)
    if bits <= 8:
        psnr, distance, max_error = (31.0, 36.0, 41.0, 47.0), (5.0, 2.5, 1.2, 0.4), (16.0, 6.0, 2.0, 1.0)
    else:  # every curve spans about 48-78 dB so the 16-bit BD-rates share one interval
        psnr, distance, max_error = (50.0, 57.0, 64.0, 72.0), (1.0, 0.3, 0.1, 0.03), (400.0, 100.0, 25.0, 6.0)
    return [
        Sweep("jpeg 4:2:0", "jpeg", quality),
        Sweep("jpeg 4:4:4", "jpeg", quality, {"subsampling": "4:4:4"}),
        Sweep("webp", "webp", quality),
        Sweep("avif", "avif", quality),
        Sweep("jxl", "jxl", distance),
        Sweep("jpeg2000", "jpeg2000", psnr),
        Sweep("htj2k", "htj2k", psnr),
        Sweep("lerc", "lerc", max_error),
    ]


LOSSLESS = [
    Sweep("zstd lossless", "zstd-tiff", (19,)),
    Sweep("png", "png", (9,)),
    Sweep("webp lossless", "webp", (100,), {"lossless": True}),
    Sweep("avif lossless", "avif", (100,), {"lossless": True}),
    Sweep("jxl lossless", "jxl", (0.0,), {"lossless": True}),
    Sweep("jpeg2000 lossless", "jpeg2000", (0.0,), {"lossless": True}),
    Sweep("htj2k lossless", "htj2k", (0.0,), {"lossless": True}),
    Sweep("lerc lossless", "lerc", (0.0,)),
]


@dataclass
class Point:
    """One measured encode."""

    image: str
    image_class: str
    label: str
    codec: str
    params: dict[str, Any]
    bytes: int
    bpp: float
    psnr: float
    ssim: float
    max_abs_error: float
    encode_s: float
    decode_s: float
    lossless: bool


def image_class(image: Image) -> str:
    """The class a benchmark table groups an image into."""
    if image.dtype == np.uint8:
        return "8-bit RGB" if image.bands in (3, 4) else f"8-bit {image.bands}-band"
    if image.dtype == np.uint16:
        return "16-bit single band" if image.bands == 1 else "16-bit multiband"
    return f"{image.dtype.name} {image.bands}-band"


def centre_crop(image: Image, side: int) -> Image:
    """The image cut to at most ``side`` x ``side`` around its centre (metadata kept)."""
    h, w = image.height, image.width
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    arr = np.ascontiguousarray(image.array[top:top + side, left:left + side])
    return Image(arr, image.format, image.bit_depth, image.nodata, image.alpha_band, image.geotiff_tags)


def measure(image: Image, name: str, sweep: Sweep, value: float, cls: str) -> Point | None:
    """Encode/decode one point and measure it; None when the codec cannot hold the image."""
    from recodec.metrics import compute_metrics

    codec = get_codec(name)
    params = dict(sweep.params, **{codec.knob.name: value})
    try:
        t0 = time.perf_counter()
        data = codec.encode(image.array, **params)
        t1 = time.perf_counter()
        out = codec.decode(data)
        t2 = time.perf_counter()
    except CodecError:
        return None
    bpp = len(data) * 8 / (image.width * image.height)
    exact = bool(np.array_equal(out, image.array))
    if exact:
        psnr, ssim, err = math.inf, 1.0, 0.0
    else:
        m = compute_metrics(image.array, out, bit_depth=image.bit_depth, nodata=image.nodata)
        psnr, ssim, err = m.psnr, m.ssim, m.max_abs_error
    return Point("", cls, sweep.label, name, params, len(data), bpp, psnr, ssim, err, t1 - t0, t2 - t1, exact)


def run_image(path: Path, crop: int) -> list[Point]:
    """Every sweep on one image."""
    image = read_image(path.read_bytes(), name=path.name)
    if crop:
        image = centre_crop(image, crop)
    cls = image_class(image)
    bits = 8 if image.dtype == np.uint8 else 16
    points = []
    for sweep in lossy_sweeps(bits) + LOSSLESS:
        if not get_codec(sweep.codec).capabilities.supports(image.dtype, image.bands):
            continue
        for value in sweep.knob_values:
            point = measure(image, sweep.codec, sweep, value, cls)
            if point is not None:
                point.image = path.name
                points.append(point)
    return points


def curve(points: list[Point], image: str, label: str) -> tuple[list[float], list[float]]:
    """(bpp, psnr) of one lossy curve, lossless points left out."""
    pts = [p for p in points if p.image == image and p.label == label and math.isfinite(p.psnr)]
    return [p.bpp for p in pts], [p.psnr for p in pts]


def bd_rates(points: list[Point]) -> dict[str, dict[str, float]]:
    """BD-rate (%) per image and lossy curve against the image class's anchor."""
    from recodec.rd import bd_rate

    out: dict[str, dict[str, float]] = {}
    for image in sorted({p.image for p in points}):
        pts = [p for p in points if p.image == image]
        eight_bit = pts[0].image_class.startswith("8-bit")
        labels = sorted({p.label for p in pts if not p.lossless and p.label not in {s.label for s in LOSSLESS}})
        row: dict[str, float] = {}
        for label in labels:
            rate, quality = curve(points, image, label)
            if len(rate) < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if eight_bit:
                    anchor_rate, anchor_q = curve(points, image, ANCHOR_8BIT[1])
                else:
                    zstd = [p.bpp for p in pts if p.label == ANCHOR_16BIT[1]]
                    if not zstd:
                        continue
                    # a lossless anchor offers every quality at one rate; a fixed quality interval
                    # makes the codecs' BD-rates comparable with each other
                    anchor_q = list(np.linspace(*BD_INTERVAL_16BIT, 8))
                    anchor_rate = [zstd[0]] * len(anchor_q)
                row[label] = bd_rate(anchor_rate, anchor_q, rate, quality)
        out[image] = row
    return out


def plot(points: list[Point], out_dir: Path) -> list[Path]:
    """One PNG per image: PSNR and SSIM against bpp for every lossy curve, lossless sizes marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image in sorted({p.image for p in points}):
        pts = [p for p in points if p.image == image]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=80)
        for label in dict.fromkeys(p.label for p in pts):
            curve_pts = sorted((p for p in pts if p.label == label and not p.lossless), key=lambda p: p.bpp)
            if curve_pts:
                for ax, attr in zip(axes, ("psnr", "ssim")):
                    ax.plot([p.bpp for p in curve_pts], [getattr(p, attr) for p in curve_pts], "o-", ms=3,
                            label=label)
        lossless = [p for p in pts if p.lossless and p.label in {s.label for s in LOSSLESS}]
        for ax in axes:
            for p in lossless:
                ax.axvline(p.bpp, color="grey", lw=0.6, ls=":")
            ax.set_xscale("log")
            ax.set_xlabel("bits per pixel (all bands)")
            ax.grid(alpha=0.3)
        best = min(lossless, key=lambda p: p.bpp, default=None)
        if best is not None:
            axes[0].set_title(f"PSNR (dotted: lossless sizes, best {best.label} {best.bpp:.2f} bpp)", fontsize=9)
        axes[1].set_title("SSIM", fontsize=9)
        axes[0].set_ylabel("PSNR (dB, full-scale peak)")
        axes[1].legend(fontsize=7, loc="lower right")
        fig.suptitle(f"{image} ({pts[0].image_class})", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"rd_{Path(image).stem}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def markdown(points: list[Point], rates: dict[str, dict[str, float]]) -> str:
    """Tables: BD-rate per image and per class (median), lossless ratios, speeds."""
    lines: list[str] = []
    classes = sorted({p.image_class for p in points})
    for cls in classes:
        images = sorted({p.image for p in points if p.image_class == cls})
        labels = sorted({label for im in images for label in rates.get(im, {})})
        anchor = ANCHOR_8BIT[1] if cls.startswith("8-bit") else (
            f"{ANCHOR_16BIT[1]} over {BD_INTERVAL_16BIT[0]:.0f}-{BD_INTERVAL_16BIT[1]:.0f} dB")
        lines += [f"#### {cls}: BD-rate vs {anchor} (%, PSNR; negative = smaller)", "",
                  "| image | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for im in images:
            cells = [_fmt(rates[im].get(label)) for label in labels]
            lines.append(f"| {im} | " + " | ".join(cells) + " |")
        med = [_fmt(_median([rates[im].get(label) for im in images])) for label in labels]
        lines += ["| **median** | " + " | ".join(med) + " |", ""]
        lossless_labels = [s.label for s in LOSSLESS]
        lines += [f"#### {cls}: lossless compression ratio vs raw (median over images)", "",
                  "| codec | ratio | encode s | decode s |", "|---|---|---|---|"]
        for label in lossless_labels:
            pts = [p for p in points if p.image_class == cls and p.label == label and p.lossless]
            if pts:
                ratios = [_raw_bytes(p) / p.bytes for p in pts]
                lines.append(f"| {label} | {statistics.median(ratios):.2f} | "
                             f"{statistics.median(p.encode_s for p in pts):.3f} | "
                             f"{statistics.median(p.decode_s for p in pts):.3f} |")
        lines.append("")
    return "\n".join(lines)


_RAW: dict[str, int] = {}


def _raw_bytes(p: Point) -> int:
    return _RAW[p.image]


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.1f}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img", help="folder for the RD plots")
    parser.add_argument("--crop", type=int, default=256, help="centre crop side in pixels (0 = whole image)")
    parser.add_argument("--json", type=Path, default=None, help="write every measured point here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    points: list[Point] = []
    started = time.perf_counter()
    for path in sorted(p for p in args.folder.iterdir() if p.suffix.lower() in EXTENSIONS):
        t0 = time.perf_counter()
        pts = run_image(path, args.crop)
        image = read_image(path.read_bytes())
        crop = centre_crop(image, args.crop) if args.crop else image
        _RAW[path.name] = crop.array.nbytes
        points += pts
        print(f"{path.name}: {len(pts)} points in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    rates = bd_rates(points)
    written = plot(points, args.out)
    if args.json:
        args.json.write_text(json.dumps({"points": [asdict(p) for p in points], "bd_rate": rates,
                                         "raw_bytes": _RAW}, indent=1, default=str))
    print(markdown(points, rates))
    print(f"plots: {', '.join(str(p) for p in written)}; {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
