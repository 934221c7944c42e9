"""Error-bounded coding of 16-bit scenes: LERC+zstd, JPEG-LS, the residual mode and ``auto``.

    python benchmarks/bounded_error.py [--data ../shared/data] [--json docs/results/bounded_error.json]
                                       [--plot docs/img/bounded_error.png] [--fractions 0.001,0.005,0.01]

Scenes: every 16-bit image of ``devset/`` and ``satellite-train/`` (Landsat 8 bands, except the BQA
bit-flag band, for which a numeric error bound means nothing), plus a 7-band stack of the l8_cloudy
bands B1-B7 built in memory.  For each scene and each E = fraction x dynamic range (max - min over
valid samples, nodata excluded; the same rule as ``--target "max_abs_error<=F%"``):

- ``lerc``: LERC+zstd at max_error = E (LERC takes a fractional E as is);
- ``jpegls`` and ``residual``: at max_error = E (floored on integer data), nodata passed;
- ``auto``: the pipeline's own choice, :func:`recodec.target.search_codecs` over
  ``expand_codecs("auto", bounded=True)`` with the target ``max_abs_error<=E`` (its time is the
  whole search: every candidate's encodes and decodes).

Reported per run: compression ratio (raw bytes / output bytes), encode and decode MP/s (megapixels,
whatever the band count), and the measured max error over valid samples, which must be <= E; nodata
samples must come back exactly for jpegls and residual.  A violated bound makes the run exit 1.
Timings are one run each on a shared machine: compare them within this run only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from recodec.codecs import expand_codecs, get_codec  # noqa: E402
from recodec.errors import ImageTooLargeError  # noqa: E402
from recodec.imageio import read_image  # noqa: E402
from recodec.target import codec_candidate, dynamic_range, parse_target, search_codecs  # noqa: E402

CODECS = ("lerc", "jpegls", "residual")
STACK = [f"satellite-train/l8_cloudy_B{b}.tif" for b in range(1, 8)]
SKIP = {"l8_cloudy_BQA.tif"}


def scenes(data: Path, only: set[str]) -> list[tuple[str, np.ndarray, float | None]]:
    """(name, (H, W, S) array, nodata) of every 16-bit scene, plus the 7-band stack (``only``: a subset)."""
    out = []
    for folder in ("devset", "satellite-train"):
        for path in sorted((data / folder).glob("*.tif")):
            if path.name in SKIP or (only and path.name not in only):
                continue
            try:
                image = read_image(path.read_bytes(), name=path.name)
            except ImageTooLargeError:  # the 648 MP uint8 world mask: not a 16-bit scene anyway
                continue
            if image.dtype.itemsize == 2:
                out.append((path.name, image.array, image.nodata))
    if not only or "l8_cloudy_B1-B7_stack" in only:
        bands = [read_image((data / p).read_bytes()).array for p in STACK]
        out.append(("l8_cloudy_B1-B7_stack", np.concatenate(bands, axis=2), None))
    return out


def measured_error(src: np.ndarray, out: np.ndarray, nodata: float | None) -> tuple[float, bool]:
    """Max |out - src| over valid samples, and whether every nodata sample came back exactly."""
    valid = np.ones(src.shape, bool) if nodata is None else src != nodata
    err = np.abs(out.astype(np.float64) - src.astype(np.float64))[valid]
    exact = nodata is None or bool(np.array_equal(out == nodata, src == nodata))
    return (float(err.max()) if err.size else 0.0), exact


def run_codec(name: str, src: np.ndarray, bound: float, nodata: float | None) -> dict[str, Any]:
    """One encode + decode of ``name`` at max_error = ``bound``."""
    codec = get_codec(name)
    params: dict[str, Any] = {"max_error": bound}
    if "nodata" in codec.all_params() and nodata is not None:
        params["nodata"] = nodata
    t0 = time.perf_counter()
    data = codec.encode(src, **params)
    t1 = time.perf_counter()
    out = codec.decode(data)
    t2 = time.perf_counter()
    err, exact = measured_error(src, out, nodata)
    return {"bytes": len(data), "encode_s": t1 - t0, "decode_s": t2 - t1, "max_error": err,
            "nodata_exact": exact if name != "lerc" else None}


def run_auto(src: np.ndarray, bound: float, nodata: float | None) -> dict[str, Any]:
    """The pipeline's per-image choice under ``max_abs_error<=bound`` (the whole search timed)."""
    target = parse_target(f"max_abs_error<={bound!r}")
    timing = {"decode": 0.0}
    cands = []
    for name in expand_codecs("auto", bounded=True):
        codec = get_codec(name)

        def decoder(data: bytes, c: Any = codec) -> np.ndarray:
            t = time.perf_counter()
            try:
                return c.decode(data)
            finally:
                timing["decode"] += time.perf_counter() - t

        def encoder(arr: np.ndarray, p: dict[str, Any], c: Any = codec) -> bytes:
            if "nodata" in c.all_params() and nodata is not None:
                p = {**p, "nodata": nodata}
            return c.encode(arr, **p)

        cands.append(codec_candidate(codec, src, nodata=nodata, structural=False, max_error=bound,
                                     encoder=encoder, decoder=decoder))
    t0 = time.perf_counter()
    result = search_codecs(cands, target)
    total = time.perf_counter() - t0
    if not result.met or result.best is None or result.best.data is None:
        return {"bytes": None, "codec": None, "reasons": result.reasons}
    err, exact = measured_error(src, result.best.measured["decoded"], nodata)
    # decode speed of the winner alone: one more decode, the one a reader pays
    t1 = time.perf_counter()
    get_codec(result.codec).decode(result.best.data)
    return {"bytes": len(result.best.data), "codec": result.codec, "encode_s": total - timing["decode"],
            "search_s": total, "decode_s": time.perf_counter() - t1, "max_error": err,
            "nodata_exact": exact if result.codec != "lerc" else None,
            "attempts": sum(r.attempts for r in result.results.values())}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print Markdown tables; write JSON and a plot."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "results" / "bounded_error.json")
    ap.add_argument("--plot", default=str(REPO / "docs" / "img" / "bounded_error.png"),
                    help="PNG to write; '' for none")
    ap.add_argument("--fractions", default="0.005,0.001,0.01")
    ap.add_argument("--only", default="", help="comma-separated scene names (default: all)")
    args = ap.parse_args(argv)
    fractions = sorted(float(f) for f in args.fractions.split(","))
    rows: list[dict[str, Any]] = []
    if args.json.exists():  # resume: keep finished (scene, fraction) pairs
        rows = json.loads(args.json.read_text())["rows"]
    done = {(r["scene"], r["fraction"]) for r in rows}
    order = [float(f) for f in args.fractions.split(",")]
    loaded = scenes(args.data, set(filter(None, args.only.split(","))))
    for fraction in order:  # the 0.5% column first when listed first: the bar's figures land early
        for name, src, nodata in loaded:
            if (name, fraction) in done:
                continue
            rows.append(measure_scene(name, src, nodata, fraction))
            print(json.dumps({k: rows[-1][k] for k in ("scene", "fraction")} | {
                c: rows[-1][c].get("bytes") for c in (*CODECS, "auto")} | {"auto_codec": rows[-1]["auto"].get("codec")}),
                flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"rows": rows}, indent=1, default=float))
    print(report(rows, fractions))
    if args.plot:
        plot(rows, fractions, Path(args.plot))
    return 0 if all(check(r) for r in rows) else 1


def measure_scene(name: str, src: np.ndarray, nodata: float | None, fraction: float) -> dict[str, Any]:
    """Every codec and ``auto`` on one scene at E = ``fraction`` of its dynamic range."""
    span = dynamic_range(src, nodata)
    bound = fraction * span
    row: dict[str, Any] = {"scene": name, "shape": list(src.shape), "dtype": src.dtype.name, "nodata": nodata,
                           "span": span, "fraction": fraction, "bound": bound, "raw_bytes": int(src.nbytes),
                           "megapixels": src.shape[0] * src.shape[1] / 1e6}
    for codec in CODECS:
        row[codec] = run_codec(codec, src, bound, nodata)
    row["auto"] = run_auto(src, bound, nodata)
    return row


def check(row: dict[str, Any]) -> bool:
    """True when every codec's measured max error is <= E and nodata came back where promised."""
    ok = True
    for codec in (*CODECS, "auto"):
        res = row[codec]
        if res.get("bytes") is None:
            continue
        if res["max_error"] > row["bound"] or res.get("nodata_exact") is False:
            print(f"BOUND VIOLATED: {row['scene']} {codec} {res}", file=sys.stderr)
            ok = False
    return ok


def ratio(row: dict[str, Any], codec: str) -> float | None:
    """Raw bytes / output bytes, or None when the codec failed."""
    size = row[codec].get("bytes")
    return row["raw_bytes"] / size if size else None


def _median(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else float("nan")


def report(rows: list[dict[str, Any]], fractions: list[float]) -> str:
    """Markdown tables: medians per class and E, the auto/LERC bar, speeds, and per-scene ratios at 0.5%."""
    lines = ["| E (of range) | class | scenes | LERC+zstd | JPEG-LS | residual | auto | auto / LERC | max err / E |",
             "|---|---|---|---|---|---|---|---|---|"]
    for fraction in fractions:
        for label, multi in (("single-band", False), ("multiband", True)):
            sel = [r for r in rows if r["fraction"] == fraction and (r["shape"][2] > 1) == multi]
            if not sel:
                continue
            med = {c: _median([ratio(r, c) for r in sel]) for c in (*CODECS, "auto")}
            worst = max(r[c]["max_error"] / r["bound"] for r in sel for c in (*CODECS, "auto")
                        if r[c].get("bytes") and r["bound"] > 0)
            lines.append(f"| {fraction:.1%} | {label} | {len(sel)} | {med['lerc']:.2f} | {med['jpegls']:.2f} | "
                         f"{med['residual']:.2f} | {med['auto']:.2f} | {med['auto'] / med['lerc']:.2f}x | "
                         f"{worst:.3f} |")
    lines += ["", "| codec | median encode MP/s | median decode MP/s |", "|---|---|---|"]
    for codec in (*CODECS, "auto"):
        enc = _median([r["megapixels"] / r[codec]["encode_s"] for r in rows if r[codec].get("bytes")])
        dec = _median([r["megapixels"] / r[codec]["decode_s"] for r in rows if r[codec].get("bytes")])
        lines.append(f"| {codec} | {enc:.2f} | {dec:.2f} |")
    lines += ["", "| scene (E = 0.5% of range) | shape | E | LERC+zstd | JPEG-LS | residual | auto (codec) |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["fraction"] != 0.005:
            continue
        h, w, s = r["shape"]
        lines.append(f"| {r['scene']} | {h}x{w}x{s} {r['dtype']} | {r['bound']:.1f} | {ratio(r, 'lerc'):.2f} | "
                     f"{ratio(r, 'jpegls'):.2f} | {ratio(r, 'residual'):.2f} | "
                     f"{ratio(r, 'auto') or float('nan'):.2f} ({r['auto'].get('codec')}) |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], fractions: list[float], path: Path) -> None:
    """Median compression ratio against E, one panel per class, one line per codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (label, multi) in zip(axes, (("single-band", False), ("multiband", True))):
        for codec, name, style in (("lerc", "LERC+zstd", "-o"), ("jpegls", "JPEG-LS", "-o"),
                                   ("residual", "residual", "-o"), ("auto", "auto (dashed: often = JPEG-LS)", "--x")):
            ys = [_median([ratio(r, codec) for r in rows if r["fraction"] == f and (r["shape"][2] > 1) == multi])
                  for f in fractions]
            ax.plot([100 * f for f in fractions], ys, style, label=name, linewidth=3 if codec == "jpegls" else 1.5)
        ax.set_title(f"16-bit {label} scenes (median)")
        ax.set_xlabel("max error E, % of dynamic range")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("compression ratio (raw / output)")
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
