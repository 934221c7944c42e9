"""How the ``overfit`` encoder quantises its networks: one weight precision for every layer, one per
network, or one per layer (the shipped rule, ``encoder._choose``), scored on the same fits.

Training data only: the ``priming`` study's 384x384 centre crops of three CLIC 2025 validation
photos (``benchmarks/overfitted_schedule.py``), fitted once at the ``fast`` preset for each lambda;
only the quantisation differs between rules, so the comparison has no fit-to-fit noise.  The score
is the exact loss that the rule minimises (``lmbda * 255**2 * MSE + bpp`` with the parameter bytes,
before the range coder's few bytes of overhead and the 34-byte header)::

    nice python benchmarks/overfitted_quant.py --cache /tmp/overfit-fits   # ~3 min per fit on one core
    python benchmarks/overfitted_quant.py --cache /tmp/overfit-fits --report

Rows: ``docs/results/overfitted_quant.jsonl``; results in docs/overfitted.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

LMBDAS = (0.0008, 0.002, 0.01)
LOG = Path("docs/results/overfitted_quant.jsonl")


def _uniform(cost: Callable[[list[int]], float], layers: int, start: Any) -> list[int]:
    """One precision for a whole network (the best of the preset's candidates), no per-layer moves."""
    return min((cost([b] * layers), [b] * layers) for b in start)[1]


@contextmanager
def _descent(rule: Callable[..., list[int]]) -> Iterator[None]:
    """The encoder with ``rule`` choosing the precisions of each network's layers."""
    from recodec.codecs.overfit import encoder as E

    saved = E._descend
    E._descend = rule
    try:
        yield
    finally:
        E._descend = saved


def exact_loss(fitted: Any, p: Any) -> dict[str, float]:
    """The exact loss of a quantised fit, with its parameter bytes and bpp."""
    import torch

    from recodec.codecs.overfit import encoder as E
    from recodec.codecs.overfit import latents as L
    from recodec.codecs.overfit.exact import OUT_FRAC, ExactArm, synthesize

    h, w = p.x.shape[2:]
    plan = L.make_plan(h, w, fitted.net.arch.levels)
    lat = [torch.from_numpy(y.astype(np.float64))[None, None] for y in fitted.latents]
    rec = synthesize(fitted.net, lat) * 2.0**-OUT_FRAC
    bpp = (L.estimate_bits(plan, ExactArm(fitted.net), L.fill(plan, fitted.latents)) + 8 * len(fitted.params)) / p.pixels
    return {"loss": p.lmbda * 255**2 * float(E.distortion(rec[None].float(), p)) + bpp,
            "param_bytes": len(fitted.params), "bpp": bpp}


def _pairs(fitted: Any, p: Any) -> dict[str, int]:
    """How many latents the fit has, and how many distinct (context, value) pairs the precision search prices."""
    import torch

    from recodec.codecs.overfit import latents as L

    h, w = p.x.shape[2:]
    plan = L.make_plan(h, w, fitted.arch.levels)
    ints = [torch.round(y.detach())[0, 0].numpy().astype(np.int64) for y in fitted.latents]
    return {"latents": len(plan.order), "distinct_pairs": len(L.coded(plan, L.fill(plan, ints)).values)}


def rules(fitted: Any, p: Any, preset: Any) -> dict[str, dict[str, Any]]:
    """Score every rule on one float fit (``fitted``: the model before quantisation)."""
    from recodec.codecs.overfit import encoder as E

    out: dict[str, dict[str, Any]] = {}
    singles = []
    for b in preset.bits:
        with _descent(lambda cost, layers, start, b=b: [b] * layers):
            singles.append(exact_loss(E._choose(fitted, p, preset), p))
    out["one precision for all layers"] = min(singles, key=lambda r: r["loss"])
    out["one precision for all layers"].update(_pairs(fitted, p))
    for name, rule in (("one precision per network", _uniform), ("one precision per layer (shipped)", E._descend)):
        t0 = time.perf_counter()
        with _descent(rule):
            chosen = E._choose(fitted, p, preset)
        out[name] = {**exact_loss(chosen, p), "choose_s": time.perf_counter() - t0,
                     "bits": [int(np.abs(q.weight).max()).bit_length() + 1 for q in chosen.net.layers()]}
    return out


def fitted_model(name: str, img: np.ndarray, lmbda: float, cache: Path) -> tuple[Any, Any]:
    """(float model, problem) of the ``fast`` fit of ``img``, from ``cache`` when it is there."""
    import torch

    from recodec.codecs import get_codec
    from recodec.codecs.overfit import encoder as E
    from recodec.codecs.overfit.network import OverfitModel

    path = cache / f"{name}_{lmbda}.pt"
    if not path.exists():
        seen: dict[str, Any] = {}
        real = E._choose

        def spy(model: Any, p: Any, preset: Any) -> Any:
            seen.update(model=model, p=p)
            return real(model, p, preset)

        E._choose = spy
        try:
            get_codec("overfit").encode(img, lmbda=lmbda)
        finally:
            E._choose = real
        p = seen["p"]
        cache.mkdir(parents=True, exist_ok=True)
        torch.save({"state": seen["model"].state_dict(), "arch": seen["model"].arch, "x": p.x, "valid": p.valid,
                    "weight": p.weight, "lmbda": lmbda}, path)
    saved = torch.load(path, weights_only=False)  # our own cache file
    h, w = saved["x"].shape[2:]
    model = OverfitModel(saved["arch"], h, w)
    model.load_state_dict(saved["state"])
    return model, E.Problem(saved["x"], saved["valid"], saved["weight"], saved["lmbda"], h * w)


def report(rows: list[dict[str, Any]]) -> None:
    """One Markdown row per rule: mean exact loss and parameter bytes against one precision for all."""
    ref = {(r["image"], r["lmbda"]): r for r in rows if r["rule"] == "one precision for all layers"}
    print("| rule | fits | exact loss vs one precision | parameter bytes | choice s |\n|---|---|---|---|---|")
    for rule in dict.fromkeys(r["rule"] for r in rows):
        rs = [r for r in rows if r["rule"] == rule]
        loss = np.mean([r["loss"] / ref[(r["image"], r["lmbda"])]["loss"] - 1 for r in rs])
        secs = [r["choose_s"] for r in rs if "choose_s" in r]
        choice = f"{np.mean(secs):.1f}" if secs else "-"
        print(f"| {rule} | {len(rs)} | {100 * loss:+.1f} % | {np.mean([r['param_bytes'] for r in rs]):.0f} | {choice} |")


def main() -> None:
    """Fit (or load) every crop and lambda, score the rules, append the rows; or ``--report`` them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/overfit-fits"), help="saved float fits")
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    if args.report:
        report([json.loads(line) for line in args.log.open()])
        return
    import torch

    from overfitted_schedule import crops
    from recodec.codecs.overfit.encoder import PRESETS

    torch.set_num_threads(1)
    for name, img in crops(384, 384):
        for lmbda in LMBDAS:
            model, p = fitted_model(name, img, lmbda, args.cache)
            for rule, row in rules(model, p, PRESETS["fast"]).items():
                line = json.dumps({"image": name, "lmbda": lmbda, "rule": rule, **row})
                print(line, flush=True)
                with args.log.open("a") as fh:
                    fh.write(line + "\n")


if __name__ == "__main__":
    main()
