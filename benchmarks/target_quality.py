"""Per-image target-quality search vs one fixed knob per codec, on real images.

For a target T (default ``psnr>=40``) and each codec C, over the images C can hold:

(a) fixed knob: the single knob value that makes *every* image meet T.  Scanning the grid
    with every image is what an archive operator would do; since the per-image search
    already finds each image's lowest passing grid value, the fixed knob is the highest of
    those (the worst-case image sets it), then every image is encoded at it to verify, and
    the knob moves up the grid until all pass (a non-monotone curve could need that).
(b) search: :func:`recodec.target.search` per image, same grid, smallest passing file.

"auto" takes, per image, the smallest passing result over all codecs (what
:func:`recodec.target.search_codecs` returns; the per-codec searches are reused), and is
compared with the best single fixed-knob codec that holds and reaches T on every image.
Images whose target is unreachable with a codec are left out of that codec's totals.

    python benchmarks/target_quality.py --target "psnr>=40" --photos 20 --out /tmp/target_quality.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recodec.codecs import get_codec  # noqa: E402
from recodec.formats.source import read_image  # noqa: E402
from recodec.target import Target, codec_candidate, knob_grid, parse_target, search  # noqa: E402

DATA = Path("/work/shared/data")
DEFAULT_CODECS = "jpeg,webp,jxl,jpeg2000,htj2k"
#: Codec options for an archive: JPEG keeps full-resolution chroma (4:2:0 caps PSNR on many images).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {"jpeg": {"subsampling": "4:4:4"}}


@dataclass
class ImageRun:
    """One image's search with one codec."""

    name: str
    met: bool
    size: int = 0
    attempts: int = 0
    threshold: int = -1        # lowest passing grid position seen (quality order)
    seconds: float = 0.0


@dataclass
class CodecRun:
    """Every image of a set with one codec, plus what the fixed-knob baseline needs."""

    codec: str
    grid: dict[str, list[float]] = field(default_factory=dict)
    images: list[ImageRun] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def load_images(photos: int) -> dict[str, list[tuple[str, Any]]]:
    """The devset images and the first ``photos`` CID22 photos, read with recodec.formats.source."""
    sets: dict[str, list[tuple[str, Any]]] = {"devset": [], "photos": []}
    for path in sorted((DATA / "devset").iterdir()):
        if path.suffix.lower() in {".tif", ".tiff", ".png", ".jpg", ".jpeg"}:
            sets["devset"].append((path.name, read_image(path.read_bytes(), name=path.name)))
    for path in sorted((DATA / "train" / "cid22-512").glob("*.png"))[:photos]:
        sets["photos"].append((path.name, read_image(path.read_bytes(), name=path.name)))
    return sets


def run_codec(codec_name: str, images: list[tuple[str, Any]], target: Target) -> CodecRun:
    """Per-image searches of one codec over one image set."""
    codec = get_codec(codec_name)
    run = CodecRun(codec_name)
    for name, image in images:
        cand = codec_candidate(codec, image.array, nodata=image.nodata, bit_depth=image.bit_depth,
                               params=DEFAULT_PARAMS.get(codec_name), keep_decoded=False,
                               structural=target.needs_structural)
        if cand.skip_reason:
            run.skipped[name] = cand.skip_reason
            continue
        grid = list(cand.grid) if cand.grid is not None else knob_grid(cand.knob)
        start = time.perf_counter()
        try:
            res = search(cand.encode, cand.measure, cand.knob, target, grid=grid)
        except Exception as exc:  # an unsupported layout found at encode time
            run.skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        position = {v: i for i, v in enumerate(grid)}
        passing = [position[a.knob_value] for a in res.trace if a.passed and a.knob_value in position]
        run.grid[name] = grid
        run.images.append(ImageRun(name, res.met, len(res.data or b""), res.attempts,
                                   min(passing) if passing else -1, time.perf_counter() - start))
    return run


def fixed_knob(run: CodecRun, images: dict[str, Any], target: Target) -> dict[str, Any] | None:
    """Baseline (a): the lowest grid position meeting the target on every reachable image."""
    reachable = [r for r in run.images if r.met]
    if not reachable:
        return None
    grids = {tuple(run.grid[r.name]) for r in reachable}
    if len(grids) != 1:
        return None  # image-dependent grids (LERC): no single knob value to compare with
    grid = list(grids.pop())
    codec = get_codec(run.codec)
    pos = max(r.threshold for r in reachable)
    verify_encodes = 0
    while pos < len(grid):
        sizes: dict[str, int] = {}
        for r in reachable:
            image = images[r.name]
            cand = codec_candidate(codec, image.array, nodata=image.nodata, bit_depth=image.bit_depth,
                                   params=DEFAULT_PARAMS.get(run.codec), keep_decoded=False,
                                   structural=target.needs_structural)
            data = cand.encode(int(grid[pos]) if cand.knob.integer else grid[pos])
            verify_encodes += 1
            if not target.satisfied(cand.measure(data)):
                break
            sizes[r.name] = len(data)
        else:
            return {"knob": grid[pos], "bytes": sum(sizes.values()), "verify_encodes": verify_encodes,
                    "sizes": sizes}
        pos += 1
    return None


def summarise(set_name: str, runs: list[CodecRun], images: dict[str, Any], target: Target) -> dict[str, Any]:
    """Totals of (a) and (b) per codec, and auto vs the best fixed single codec."""
    out: dict[str, Any] = {"set": set_name, "images": len(images), "codecs": {}}
    fixed_by_codec: dict[str, dict[str, Any]] = {}
    for run in runs:
        reachable = [r for r in run.images if r.met]
        fixed = fixed_knob(run, images, target)
        entry: dict[str, Any] = {
            "held": len(run.images), "reachable": len(reachable), "skipped": len(run.skipped),
            "search_bytes": sum(r.size for r in reachable),
            "encodes_per_image": (sum(r.attempts for r in run.images) / len(run.images)) if run.images else None,
            "seconds_per_image": (sum(r.seconds for r in run.images) / len(run.images)) if run.images else None,
        }
        if fixed is not None:
            entry.update(fixed_knob=fixed["knob"], fixed_bytes=fixed["bytes"],
                         savings_pct=100.0 * (1 - entry["search_bytes"] / fixed["bytes"]))
            if len(reachable) == len(images):
                fixed_by_codec[run.codec] = fixed
        out["codecs"][run.codec] = entry
    # auto: per image, the smallest passing encoding over every codec
    best: dict[str, tuple[int, str]] = {}
    encodes: dict[str, int] = {}
    for run in runs:
        for r in run.images:
            encodes[r.name] = encodes.get(r.name, 0) + r.attempts
            if r.met and (r.name not in best or r.size < best[r.name][0]):
                best[r.name] = (r.size, run.codec)
    auto_bytes = sum(size for size, _ in best.values())
    wins: dict[str, int] = {}
    for _, codec in best.values():
        wins[codec] = wins.get(codec, 0) + 1
    auto: dict[str, Any] = {"images_met": len(best), "bytes": auto_bytes, "wins": wins,
                            "encodes_per_image": sum(encodes.values()) / max(1, len(encodes))}
    if fixed_by_codec and len(best) == len(images):
        name, fixed = min(fixed_by_codec.items(), key=lambda kv: kv[1]["bytes"])
        auto.update(best_fixed_codec=name, best_fixed_knob=fixed["knob"], best_fixed_bytes=fixed["bytes"],
                    savings_pct=100.0 * (1 - auto_bytes / fixed["bytes"]))
    out["auto"] = auto
    return out


def print_table(summary: dict[str, Any]) -> None:
    """Human-readable rows for one image set."""
    print(f"\n== {summary['set']} ({summary['images']} images) ==")
    print(f"{'codec':<10}{'held':>5}{'met':>5}{'fixed knob':>12}{'fixed MB':>10}{'search MB':>11}"
          f"{'saving':>8}{'enc/img':>9}{'s/img':>7}")
    for codec, e in summary["codecs"].items():
        fixed = f"{e['fixed_knob']:.4g}" if "fixed_knob" in e else "-"
        fixed_mb = f"{e['fixed_bytes'] / 1e6:.3f}" if "fixed_bytes" in e else "-"
        saving = f"{e['savings_pct']:.1f}%" if "savings_pct" in e else "-"
        per = f"{e['encodes_per_image']:.1f}" if e["encodes_per_image"] is not None else "-"
        sec = f"{e['seconds_per_image']:.2f}" if e["seconds_per_image"] is not None else "-"
        print(f"{codec:<10}{e['held']:>5}{e['reachable']:>5}{fixed:>12}{fixed_mb:>10}"
              f"{e['search_bytes'] / 1e6:>11.3f}{saving:>8}{per:>9}{sec:>7}")
    a = summary["auto"]
    line = f"auto: {a['images_met']} met, {a['bytes'] / 1e6:.3f} MB, wins {a['wins']}, " \
           f"{a['encodes_per_image']:.1f} encodes/image"
    if "savings_pct" in a:
        line += (f"; vs best fixed single codec {a['best_fixed_codec']} @ {a['best_fixed_knob']:.4g} "
                 f"({a['best_fixed_bytes'] / 1e6:.3f} MB): {a['savings_pct']:.1f}% smaller")
    print(line)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="psnr>=40")
    parser.add_argument("--codecs", default=DEFAULT_CODECS, help="comma-separated registry names")
    parser.add_argument("--photos", type=int, default=20, help="CID22 photos to add (0: devset only)")
    parser.add_argument("--sets", default="devset,photos")
    parser.add_argument("--out", type=Path, help="write the JSON summary here")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the metrics (1: no OpenMP oversubscription on shared cores)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    target = parse_target(args.target)
    sets = load_images(args.photos)
    report: dict[str, Any] = {"target": str(target), "sets": []}
    started = time.perf_counter()
    for set_name in args.sets.split(","):
        images = sets[set_name]
        runs = [run_codec(c.strip(), images, target) for c in args.codecs.split(",") if c.strip()]
        summary = summarise(set_name, runs, dict(images), target)
        summary["per_image"] = {run.codec: [vars(r) for r in run.images] for run in runs}
        summary["skipped"] = {run.codec: run.skipped for run in runs if run.skipped}
        print_table(summary)
        report["sets"].append(summary)
    report["seconds"] = time.perf_counter() - started
    print(f"\ntarget {target}; {report['seconds']:.0f} s")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=lambda v: None if isinstance(v, float)
                                       and not math.isfinite(v) else str(v)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
