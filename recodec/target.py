"""Target-quality search: the smallest encoding of one image that meets every bound.

A target is a comma-separated list of bounds, e.g. ``"psnr>=40,ssim>=0.95,bpp<=2"``
(:func:`parse_target`).  :func:`search` is codec-agnostic: it is given an ``encode``
function of the knob value, a ``measure`` function that decodes once and returns the
metrics (the caller keeps the decoded array if it wants it: nothing is decoded twice),
and the codec's :class:`~recodec.codecs.base.Knob`.  :func:`search_codecs` runs it for
several codecs and keeps the smallest passing result; :func:`codec_candidate` wires a
registry codec and an image into a :class:`Candidate`.

No Prefect, Ray or object storage here: the pipeline calls these per image.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from recodec.codecs.base import search_session
from recodec.errors import CodecError, CodecUnavailableError, ConfigError, UnsupportedImageError
from recodec.task.metrics import TASK_BOUND_OPS, check_task_value
from recodec.vocabulary import BOUND_OPS, SIZE_METRICS

if TYPE_CHECKING:
    from recodec.codecs.base import Codec, Knob

#: Points of the search grid of a float knob (integer knobs use every integer).  257 points
#: cost one encode more than 129 but halve the step (0.74 dB on JPEG 2000's 10-200 dB knob,
#: 3% on a geometric distance grid), which the target_quality benchmark showed was worth it.
FLOAT_GRID_POINTS = 257
#: A float knob spanning more than this ratio is searched on a geometric grid.
GEOMETRIC_RATIO = 100.0
UNREACHABLE = "target_unreachable"

_TERM = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_\-]*)\s*(>=|<=|=>|=<|==|>|<|=)\s*(\S+)\s*$")
#: Metrics whose bound may be written relative to the image's dynamic range ("max_abs_error<=0.5%").
RELATIVE_METRICS = frozenset({"max_abs_error"})


@dataclass(frozen=True)
class Bound:
    """One bound of a target: ``metric op value``."""

    metric: str
    op: str
    value: float
    #: True when ``value`` is a percentage of each image's dynamic range (resolve it per image).
    relative: bool = False

    def holds(self, measured: Mapping[str, Any]) -> bool:
        """True when ``measured[metric]`` is present, not NaN and within the bound."""
        if self.relative:
            raise ValueError(f"bound {self} is relative: resolve the target for the image first")
        got = measured.get(self.metric)
        if got is None or (isinstance(got, float) and math.isnan(got)):
            return False
        return float(got) >= self.value if self.op == ">=" else float(got) <= self.value

    def __str__(self) -> str:
        value = self.value
        text = str(int(value)) if math.isfinite(value) and value.is_integer() else repr(value)
        return f"{self.metric}{self.op}{text}{'%' if self.relative else ''}"


@dataclass(frozen=True)
class Target:
    """A set of bounds an encoding must meet; ``str()`` gives back the parseable form."""

    bounds: tuple[Bound, ...]

    @property
    def quality_bounds(self) -> tuple[Bound, ...]:
        """Bounds that get easier as the knob moves towards higher quality."""
        return tuple(b for b in self.bounds if b.metric not in SIZE_METRICS)

    @property
    def size_bounds(self) -> tuple[Bound, ...]:
        """Bounds on size (bpp), which get harder as quality rises."""
        return tuple(b for b in self.bounds if b.metric in SIZE_METRICS)

    @property
    def needs_structural(self) -> bool:
        """True when a bound is on SSIM or MS-SSIM (the costly metrics)."""
        return any(b.metric in ("ssim", "ms_ssim") for b in self.bounds)

    @property
    def task_bounds(self) -> tuple[Bound, ...]:
        """Bounds on a task model's answer (they need ``--task-model``)."""
        return tuple(b for b in self.bounds if b.metric in TASK_BOUND_OPS)

    @property
    def relative(self) -> bool:
        """True when some bound is relative to the image's dynamic range."""
        return any(b.relative for b in self.bounds)

    def bound_value(self, metric: str) -> float | None:
        """The value of the bound on ``metric`` (a percentage when relative), or None."""
        return next((b.value for b in self.bounds if b.metric == metric), None)

    def resolve(self, span: float) -> "Target":
        """This target for an image of dynamic range ``span``: relative bounds become absolute."""
        return Target(tuple(Bound(b.metric, b.op, b.value * span / 100.0) if b.relative else b
                            for b in self.bounds))

    def with_values(self, values: Mapping[str, float]) -> "Target":
        """This target with relative bounds replaced by recorded absolute ``values`` (per metric)."""
        return Target(tuple(Bound(b.metric, b.op, float(values[b.metric])) if b.relative else b
                            for b in self.bounds))

    def failures(self, measured: Mapping[str, Any]) -> list[str]:
        """The bounds ``measured`` violates, as strings (``"psnr>=40 (got 38.2)"``)."""
        return [f"{b} (got {measured.get(b.metric)})" for b in self.bounds if not b.holds(measured)]

    def satisfied(self, measured: Mapping[str, Any]) -> bool:
        """True when every bound holds (a missing or NaN metric fails its bound)."""
        return all(b.holds(measured) for b in self.bounds)

    def __str__(self) -> str:
        return ",".join(str(b) for b in self.bounds)


def parse_target(text: str) -> Target:
    """Parse ``"psnr>=40,ssim>=0.95,max_abs_error<=20,bpp<=2"`` into a :class:`Target`.

    ``max_abs_error<=0.5%`` is relative: 0.5% of each image's dynamic range (:func:`dynamic_range`),
    made absolute per image by :meth:`Target.resolve`.

    Metric names are case-insensitive and ``-`` may stand for ``_`` (``ms-ssim``).
    Raises :class:`ConfigError` for unknown metrics, a comparison that does not fit
    the metric (``psnr<=40``), bad numbers, repeated metrics or an empty target.
    """
    bounds: list[Bound] = []
    for term in (t for t in str(text).split(",") if t.strip()):
        match = _TERM.match(term)
        if not match:
            raise ConfigError(f"target term {term.strip()!r} is not METRIC>=VALUE or METRIC<=VALUE")
        name, op, raw = match.group(1).lower().replace("-", "_"), match.group(2), match.group(3)
        if name not in BOUND_OPS:
            raise ConfigError(f"unknown target metric {name!r}; known: {', '.join(BOUND_OPS)}")
        op = {"=>": ">=", "=<": "<="}.get(op, op)
        if op != BOUND_OPS[name]:
            raise ConfigError(f"target {term.strip()!r}: {name} takes only {BOUND_OPS[name]}")
        relative = raw.endswith("%")
        if relative and name not in RELATIVE_METRICS:
            raise ConfigError(f"target {term.strip()!r}: only {', '.join(sorted(RELATIVE_METRICS))} "
                              f"takes a percentage of the dynamic range")
        try:
            value = float(raw[:-1] if relative else raw)
        except ValueError:
            raise ConfigError(f"target {term.strip()!r}: {raw!r} is not a number") from None
        _check_value(name, value, term.strip())
        if relative and value > 100:
            raise ConfigError(f"target {term.strip()!r}: a percentage of the range must be <= 100%")
        if any(b.metric == name for b in bounds):
            raise ConfigError(f"target metric {name!r} is given twice")
        bounds.append(Bound(name, op, value, relative))
    if not bounds:
        raise ConfigError("empty target: give at least one bound, e.g. 'psnr>=40'")
    return Target(tuple(bounds))


def _check_value(name: str, value: float, term: str) -> None:
    if math.isnan(value):
        raise ConfigError(f"target {term!r}: NaN is not a bound")
    if name in ("ssim", "ms_ssim") and not -1 <= value <= 1:
        raise ConfigError(f"target {term!r}: {name} lies in [-1, 1]")
    if name in ("max_abs_error", "sam") and not 0 <= value < math.inf:
        raise ConfigError(f"target {term!r}: {name} must be finite and >= 0")
    if name == "bpp" and not 0 < value < math.inf:
        raise ConfigError(f"target {term!r}: bpp must be finite and > 0")
    problem = check_task_value(name, value)
    if problem:
        raise ConfigError(f"target {term!r}: {problem}")
    if name == "psnr" and value == -math.inf:
        raise ConfigError(f"target {term!r}: psnr>=-inf bounds nothing")


def dynamic_range(array: np.ndarray, nodata: float | None = None) -> float:
    """max - min over valid samples (nodata values and NaN excluded); 0 for an image with none."""
    values = np.asarray(array).ravel()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        values = values[values != nodata]
    if values.size == 0:
        return 0.0
    return float(values.max()) - float(values.min())


def image_target(target: "Target | str | None", array: np.ndarray,
                 nodata: float | None = None) -> tuple[Target | None, dict[str, Any]]:
    """The job's target (parsed or text) made absolute for one image, and its manifest columns.

    Columns: ``max_error_bound`` (the absolute max_abs_error bound used, data units) and
    ``max_error_relative`` (the fraction of the dynamic range asked for, when relative).
    """
    if not target:
        return None, {}
    if isinstance(target, str):
        target = parse_target(target)
    asked = target.bound_value("max_abs_error")
    relative = next((b.relative for b in target.bounds if b.metric == "max_abs_error"), False)
    if target.relative:
        target = target.resolve(dynamic_range(array, nodata))
    return target, {"max_error_bound": target.bound_value("max_abs_error"),
                    "max_error_relative": asked / 100.0 if relative and asked is not None else None}


# -- search over one knob ------------------------------------------------------------------


@dataclass
class Attempt:
    """One encode + measure of the search (scalar metrics only: no arrays kept per attempt)."""

    knob_value: float
    size: int
    measured: dict[str, Any]
    passed: bool
    error: str | None = None


@dataclass
class SearchResult:
    """Outcome of a search; ``data`` is None unless ``met`` (a failing encoding is never handed out).

    ``measured`` is the full dict ``measure`` returned for the winner (a decoded array the
    caller put there included); when not met, the scalar metrics of the highest-quality
    attempt, so the caller can see how close it got.
    """

    data: bytes | None
    knob_value: float | None
    measured: dict[str, Any]
    attempts: int
    met: bool
    trace: list[Attempt] = field(default_factory=list)
    reason: str | None = None
    lossless: bool = False


def knob_grid(knob: "Knob", *, high: float | None = None, floor: float | None = None) -> list[float]:
    """Candidate knob values ordered from lowest to highest quality.

    Integer knobs: every integer in [low, high].  Float knobs: FLOAT_GRID_POINTS values.
    A lower-is-better float knob (a distance, a max error, a quantiser step) that starts at
    or below 0 or spans more than GEOMETRIC_RATIO gets a geometric grid, since its useful
    values span decades; ``low`` stays the first point when it is <= 0, and the geometric
    part starts at ``floor`` (default ``high / 10**4``).  Other float knobs (e.g. a target
    PSNR level) are evenly spaced, unless the knob is declared ``geometric``.  ``high`` overrides an infinite ``knob.high`` (required then).
    """
    low = float(knob.low)
    high = float(knob.high if high is None else high)
    if not math.isfinite(high) or not math.isfinite(low):
        raise ConfigError(f"knob {knob.name!r} has an unbounded range [{low}, {high}]: pass high=")
    if high < low:
        raise ConfigError(f"knob {knob.name!r} has low {low} > high {high}")
    if knob.integer:
        values = [float(v) for v in range(math.ceil(low), math.floor(high) + 1)]
    elif high == low:
        values = [low]
    elif knob.geometric and low > 0:
        values = np.geomspace(low, high, FLOAT_GRID_POINTS).tolist()
    elif not knob.higher_is_better and (low <= 0 or high / low > GEOMETRIC_RATIO) and high > 0:
        start = min(high, max(low, floor if floor is not None else high / 1e4))
        if low < start:
            values = [low] + np.geomspace(start, high, FLOAT_GRID_POINTS - 1).tolist()
        else:
            values = np.geomspace(start, high, FLOAT_GRID_POINTS).tolist()
    else:
        values = np.linspace(low, high, FLOAT_GRID_POINTS).tolist()
    if not values:
        raise ConfigError(f"knob {knob.name!r} has no integer in [{low}, {high}]")
    values = sorted(set(values))  # a degenerate geometric part can repeat values
    return values if knob.higher_is_better else values[::-1]


def attempt_bound(n_values: int) -> int:
    """Most encodes :func:`search` makes on a grid of ``n_values``: ``2 + ceil(log2(n))``."""
    return 2 + math.ceil(math.log2(max(n_values, 1)))


def search(encode: Callable[[float], bytes], measure: Callable[[bytes], Mapping[str, Any]], knob: "Knob",
           target: Target, *, max_attempts: int | None = None, grid: Sequence[float] | None = None,
           allow_lossless: bool = False) -> SearchResult:
    """Smallest encoding meeting ``target`` by guarded bisection over the codec's knob.

    ``grid`` (default :func:`knob_grid`) lists knob values from lowest to highest quality;
    ``measure(data)`` must decode ``data`` once and return the metrics, ``bpp`` included
    when the target bounds it.  With quality bounds (any bound but bpp) the search:

    1. encodes at the highest-quality grid value; if that fails, the target is unreachable;
    2. bisects for the lowest-quality value that passes (at most ceil(log2 n) encodes);
    3. guards against a non-monotone curve with one probe just below the failing
       boundary (a one-point dip makes a lower value pass; it is taken if smaller).

    Of every attempt that meets all bounds (bpp included) the smallest wins, so a
    non-monotone curve can cost bytes but never returns a failing result as met.  With
    only a bpp bound it instead looks for the highest quality within the budget.

    Encodes: at most ``2 + ceil(log2(n))`` for a grid of n values (100-value JPEG quality:
    9; a 257-point float grid: 11), plus 1 when ``allow_lossless`` and the knob's
    ``lossless_value`` is tried as the last resort; ``max_attempts`` lowers the cap.
    An encode raising a :class:`CodecError` (other than unsupported/unavailable, which
    propagate) counts as a failed attempt.

    Long on purpose: the three phases above share the probe cache and the best-so-far, and
    reading them in one place is what makes the guarantees checkable.
    """
    values = [float(v) for v in (grid if grid is not None else knob_grid(knob))]
    if not values:
        raise ConfigError("search grid is empty")
    cap = attempt_bound(len(values)) if max_attempts is None else min(max_attempts, attempt_bound(len(values)))
    if cap < 1:
        raise ConfigError(f"max_attempts must be >= 1, got {max_attempts}")
    quality_first = bool(target.quality_bounds)
    # Work in an index space where "passes the monotone predicate" is upward-closed:
    # quality bounds pass from some index up; a pure size bound passes from some index down,
    # so it is searched on the reversed grid.
    order = list(range(len(values))) if quality_first else list(range(len(values)))[::-1]
    probe_bounds = target.quality_bounds if quality_first else target.size_bounds
    # Among passing attempts: the smallest when quality is bounded; the highest quality
    # (latest in the grid; the lossless value ranks above all) under a pure size bound.
    rank = {v: i for i, v in enumerate(values)}
    prefer: Callable[[float, int], float] = (
        (lambda value, size: size) if quality_first else (lambda value, size: -rank.get(value, math.inf))
    )
    state = _Search(encode, measure, knob, target, probe_bounds, cap, prefer)

    def probe(pos: int) -> bool | None:
        return state.probe(values[order[pos]])

    top = len(values) - 1
    if probe(top):
        fail, ok = -1, top
        while ok - fail > 1:
            mid = (fail + ok) // 2
            verdict = probe(mid)
            if verdict is None:  # out of attempts
                break
            if verdict:
                ok = mid
            else:
                fail = mid
        if fail >= 1 and ok - fail == 1:
            probe(fail - 1)  # the dip guard; probe() keeps it only if it passes and is smaller
    # Lossless only as the last resort, and only when the lossy range cannot reach the quality
    # (it cannot help a size bound).
    if state.best is None and allow_lossless and quality_first and knob.lossless_value is not None \
            and state.seen.get(values[order[top]]) is False and float(knob.lossless_value) not in state.seen:
        state.cap += 1
        if state.probe(float(knob.lossless_value)) and state.best is not None:
            state.best_lossless = True
    return state.result(values[order[top]])


class _Search:
    """Attempt bookkeeping for :func:`search`: caching, the cap, and the best passing result."""

    def __init__(self, encode: Callable[[float], bytes], measure: Callable[[bytes], Mapping[str, Any]],
                 knob: "Knob", target: Target, probe_bounds: tuple[Bound, ...], cap: int,
                 prefer: Callable[[float, int], float]) -> None:
        self.encode, self.measure, self.knob, self.target = encode, measure, knob, target
        self.probe_bounds, self.cap, self.prefer = probe_bounds, cap, prefer
        self.seen: dict[float, bool] = {}
        self.trace: list[Attempt] = []
        self.best: tuple[bytes, float, dict[str, Any]] | None = None
        self.best_key = math.inf
        self.best_lossless = False

    def probe(self, value: float) -> bool | None:
        """Encode and measure at ``value``; True/False for the probe bounds, None when out of attempts."""
        if value in self.seen:
            return self.seen[value]
        if len(self.trace) >= self.cap:
            return None
        knob_arg: float = int(round(value)) if self.knob.integer else value
        try:
            data = self.encode(knob_arg)
            measured = dict(self.measure(data))
        except (UnsupportedImageError, CodecUnavailableError):
            raise
        except CodecError as exc:
            self.trace.append(Attempt(value, 0, {}, False, str(exc)))
            self.seen[value] = False
            return False
        measured.setdefault("bytes", len(data))
        passed = self.target.satisfied(measured)
        self.trace.append(Attempt(value, len(data), _scalars(measured), passed))
        key = self.prefer(value, len(data))
        if passed and (self.best is None or key < self.best_key):
            # Only the best keeps its full dict (with any decoded array the caller put there).
            self.best, self.best_key = (data, value, measured), key
        verdict = all(b.holds(measured) for b in self.probe_bounds)
        self.seen[value] = verdict
        return verdict

    def result(self, top_value: float) -> SearchResult:
        if self.best is not None:
            data, value, measured = self.best
            knob_value = int(round(value)) if self.knob.integer else value
            return SearchResult(data, knob_value, measured, len(self.trace), True, self.trace,
                                lossless=self.best_lossless)
        closest = next((a for a in self.trace if a.knob_value == top_value), self.trace[0] if self.trace else None)
        detail = "; ".join(self.target.failures(closest.measured)) if closest and not closest.error else (
            closest.error if closest else "no attempt")
        return SearchResult(None, None, dict(closest.measured) if closest else {}, len(self.trace), False,
                            self.trace, reason=f"{UNREACHABLE}: {detail}")


def _scalars(measured: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a metrics dict (drops arrays and lists kept by the caller)."""
    return {k: v for k, v in measured.items() if v is None or isinstance(v, (int, float, str, bool))}


# -- several codecs ------------------------------------------------------------------------


@dataclass
class Candidate:
    """One codec to try: how to encode at a knob value, how to measure, and its knob."""

    name: str
    encode: Callable[[float], bytes]
    measure: Callable[[bytes], Mapping[str, Any]]
    knob: "Knob"
    grid: Sequence[float] | None = None
    #: Set when the codec cannot hold the image (or is not installed): it is skipped.
    skip_reason: str | None = None


@dataclass
class MultiSearchResult:
    """Outcome of :func:`search_codecs`: the winner, every search, and a reason per candidate."""

    codec: str | None
    best: SearchResult | None
    results: dict[str, SearchResult]
    reasons: dict[str, str]

    @property
    def met(self) -> bool:
        """True when some candidate met the target."""
        return self.best is not None and self.best.met


def search_codecs(candidates: Sequence[Candidate], target: Target, *, max_attempts: int | None = None,
                  allow_lossless: bool = False) -> MultiSearchResult:
    """Run :func:`search` for each candidate and keep the smallest passing encoding.

    Candidates with a ``skip_reason``, or whose encode raises UnsupportedImageError /
    CodecUnavailableError, are skipped with that reason.  ``reasons[name]`` is ``"won"``,
    ``"skipped: ..."``, ``"target_unreachable: ..."`` or ``"met, but N bytes > M"``.
    """
    results: dict[str, SearchResult] = {}
    reasons: dict[str, str] = {}
    for cand in candidates:
        if cand.skip_reason is not None:
            reasons[cand.name] = f"skipped: {cand.skip_reason}"
            continue
        try:
            with search_session():  # each trial may warm-start from the previous one (overfit codec)
                res = search(cand.encode, cand.measure, cand.knob, target, max_attempts=max_attempts,
                             grid=cand.grid, allow_lossless=allow_lossless)
        except (UnsupportedImageError, CodecUnavailableError) as exc:
            reasons[cand.name] = f"skipped: {exc}"
            continue
        results[cand.name] = res
        reasons[cand.name] = res.reason or "met"
    passing = {name: r for name, r in results.items() if r.met and r.data is not None}
    if not passing:
        return MultiSearchResult(None, None, results, reasons)
    # Ties go to the earlier candidate: the caller's order is its preference.
    winner = min(passing, key=lambda name: len(passing[name].data or b""))
    best_size = len(passing[winner].data or b"")
    for name, res in passing.items():
        reasons[name] = "won" if name == winner else f"met, but {len(res.data or b'')} bytes > {best_size}"
    return MultiSearchResult(winner, passing[winner], results, reasons)


def codec_candidate(codec: "Codec | str", array: np.ndarray, *, params: Mapping[str, Any] | None = None,
                    peak: float | None = None, bit_depth: int | None = None, nodata: float | None = None,
                    device: str | None = None, keep_decoded: bool = True,
                    structural: bool = True, max_error: float | None = None,
                    encoder: Callable[[np.ndarray, dict[str, Any]], bytes] | None = None,
                    decoder: Callable[[bytes], np.ndarray] | None = None) -> Candidate:
    """A :class:`Candidate` for a registry codec and one (H, W, S) image.

    ``measure`` decodes once and returns :func:`recodec.metrics.compute_metrics` fields plus
    ``bpp`` (bits per pixel: 8 * bytes / (H * W), whatever the band count), ``bytes`` and,
    with ``keep_decoded``, the ``decoded`` array (so the winner needs no second decode).
    ``structural=False`` (fine when not ``target.needs_structural``) skips SSIM/MS-SSIM.
    ``encoder(array, params)`` / ``decoder(data)`` replace ``codec.encode`` / ``codec.decode``
    (the pipeline passes its container-aware ones); the measured dict also carries the
    :class:`~recodec.metrics.Metrics` object under ``"metrics"``.  ``max_error`` (the target's
    absolute max_abs_error bound) makes a codec whose knob is an exact ``max_error`` (LERC, JPEG-LS,
    the residual mode) try that one value: its smallest passing file, in one encode.

    Over 60 lines on purpose: ``encode`` and ``measure`` are closures over the image, the knob
    and the container-aware encoder/decoder, and splitting them out would pass all of it around.
    """
    from recodec.codecs import get_codec
    from recodec.formats.image import as_hwc
    from recodec.metrics import compute_metrics, resolve_peak, valid_mask

    if isinstance(codec, str):
        codec = get_codec(codec)
    image = as_hwc(array)
    extra = dict(params or {})
    knob = codec.knob
    grid = None
    if not math.isfinite(float(knob.high)):
        # An open-ended knob (LERC's max error) is searched up to the image's peak: an error
        # bound beyond the value range changes nothing.  On integer data a bound below 1 is
        # already lossless, so the grid's positive part starts at 1.
        mask = valid_mask(image, nodata)
        top, _ = resolve_peak(image, peak=peak, bit_depth=bit_depth, mask=mask)
        floor = 1.0 if image.dtype.kind in "iub" else None
        grid = knob_grid(knob, high=max(top, float(knob.low)), floor=floor)
    if max_error is not None and knob.name == "max_error":
        grid = [float(max_error)]
    skip = None
    if not codec.capabilities.supports(image.dtype, image.shape[2]):
        skip = (f"unsupported: {codec.name} takes {', '.join(codec.capabilities.dtypes)} with "
                f"{codec.capabilities.describe_bands()} bands, not {image.dtype.name} x {image.shape[2]}")
    elif not codec.available():
        skip = f"codec_unavailable: {codec.name} dependencies are not installed"

    def encode(value: float) -> bytes:
        params = {**extra, knob.name: value}
        return encoder(image, params) if encoder is not None else codec.encode(image, **params)

    def measure(data: bytes) -> dict[str, Any]:
        decoded = decoder(data) if decoder is not None else codec.decode(data)
        if decoded.shape != image.shape or decoded.dtype != image.dtype:
            raise CodecError(f"{codec.name} decoded {decoded.dtype}{decoded.shape}, "
                             f"expected {image.dtype}{image.shape}")
        metrics = compute_metrics(image, decoded, peak=peak, bit_depth=bit_depth, nodata=nodata, device=device,
                                  structural=structural)
        out = metrics.as_dict()
        out.update(bpp=8.0 * len(data) / (image.shape[0] * image.shape[1]), bytes=len(data))
        if keep_decoded:
            out["decoded"] = decoded
            out["metrics"] = metrics
        return out

    return Candidate(codec.name, encode, measure, knob, grid=grid, skip_reason=skip)


__all__ = [
    "BOUND_OPS", "Attempt", "Bound", "Candidate", "MultiSearchResult", "SearchResult", "Target",
    "UNREACHABLE", "attempt_bound", "codec_candidate", "dynamic_range", "image_target", "knob_grid", "parse_target", "search",
    "search_codecs",
]
