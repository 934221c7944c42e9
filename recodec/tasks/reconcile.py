"""Reconcile: prove every committed ``ok`` row's output is there, intact and decodable.

For the newest ok row of each output object (``dest_uri``), a fresh Ray actor — never
one that encoded anything — checks, in order:

1. the object exists                                     -> else ``missing``
2. its size equals ``dest_bytes``                        -> else ``size_mismatch`` (truncated / grown)
3. its SHA-256 equals ``dest_sha256``                    -> else ``sha256_mismatch`` (bit flip)
4. it decodes with the recorded codec                    -> else ``decode_failed``
5. the decoded pixels hash to ``decoded_sha256``         -> else ``pixels_mismatch``
   (an inexact, generative decoder - ``Codec.exact_decode`` False - is re-decoded with the
   row's decode settings and its metrics re-measured against the source instead, within
   :data:`INEXACT_TOLERANCE`                              -> else ``metrics_mismatch``;
   the verdict's ``check`` column says which: ``decoded_sha256`` or ``metrics``)
6. the mask (nodata bitmap, alpha samples, internal mask) hashes to ``mask_sha256``
                                                         -> else ``mask_changed``
7. a viewer shows what the source showed: the ICC profile the row says was carried is
   there, no EXIF orientation would turn the output    -> else ``viewer_mismatch``
8. georeferencing is in the GeoTIFF or its sidecar      -> else ``georef_missing``
9. recorded metrics meet the recorded target, if any     -> else ``target_not_met``
10. with ``task_model``: the model re-run on the source and on the decoded output still
    meets the target's task bounds                         -> else ``target_not_met``
    (the model failing, or the source gone or changed: ``task_model_error``)

Verdicts are committed as Parquet parts under ``DST/_recodec/reconcile/<check_id>/``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from recodec.codecs import get_codec
from recodec.content import ReadOptions
from recodec.digest import pixel_sha256, sha256_hex
from recodec.config import ReconcileConfig
from recodec.errors import library_message
from recodec.job import new_run_id
from recodec.layout import job_info_path, reconcile_part_path
from recodec.manifest import RECONCILE_SCHEMA, SCHEMA_VERSION, PartSink, iter_batches, newest_per, read_manifest, to_table
from recodec.storage import full_url, join, scrub, url_to_fs
from recodec.tasks.keep import verify_kept
from recodec.tasks.outputs import collisions, dest_path
from recodec.vocabulary import bounded_values
from recodec.tasks.workers import ensure_ray, run_bounded, start_actors, stop_actors, worker_name


#: How far re-measured metrics of an inexact decoder may be from the recorded ones: (same device
#: class as recorded, another device class).  Same class: float results differ only in low bits
#: (thread count, summation order), far below 0.05 dB; across CPU/CUDA the convolutions differ more.
INEXACT_TOLERANCE: dict[str, tuple[float, float]] = {"psnr": (0.05, 0.5), "ssim": (0.001, 0.01),
                                                     "ms_ssim": (0.001, 0.01)}

#: A copy is read back as its row was made: its limits and warnings were judged then, not now.
_AS_RECORDED = ReadOptions(max_pixels=2**62, max_image_bytes=2**62, first_frame_only=True, accept_warnings=True)


def rows_to_check(manifest: pa.Table) -> pa.Table:
    """The newest row of each source, when it has an output (ok, or a verbatim copy): what DST must hold now.

    Every such row is checked, so two sources claiming one output cannot hide behind each other.
    """
    current = newest_per(manifest, "source_uri")
    if current.num_rows == 0:
        return current
    import pyarrow.compute as pc

    has_output = pc.or_(pc.is_valid(current["dest_uri"]), pc.is_valid(current["dest_key"]))
    return current.filter(pc.fill_null(has_output, False))


def _target_verdict(row: dict[str, Any], remeasured: dict[str, Any] | None = None) -> str | None:
    if not row.get("target"):
        return None
    from recodec.target import parse_target

    target = parse_target(row["target"])
    if target.relative:  # checked against the absolute bound the run derived for this image
        if row.get("max_error_bound") is None:
            return f"relative target {row['target']} has no recorded max_error_bound"
        target = target.with_values({"max_abs_error": row["max_error_bound"]})
    measured = {**bounded_values(row), **(remeasured or {})}
    if target.satisfied(measured):
        return None
    shown = {k: v for k, v in measured.items() if v is not None}
    what = "re-measured" if remeasured else "recorded"
    return f"{what} metrics {json.dumps(shown, default=str)} do not meet target {row['target']}"


def _read_source(row: dict[str, Any], storage_options: dict[str, Any] | None,
                 src: str | None = None) -> tuple[bytes | None, str]:
    """(the row's source bytes, "") or (None, why not): gone, unreadable or a different size.

    The source is reopened as the run read it: the SRC root (``src``; default: the row's
    ``source_uri`` less its key) joined with the row's key.  The key is never parsed as a URL,
    so a key with ``::``, ``?`` or ``#`` is still that object.
    """
    from recodec.errors import RecodecError

    key = row["source_key"]
    if src is None:
        src = row["source_uri"][: len(row["source_uri"]) - len(key) - 1]
    try:
        fs, root = url_to_fs(src, storage_options)
        source = fs.cat_file(join(root, key))
    except RecodecError as exc:  # an unsafe key
        return None, str(exc)
    except OSError as exc:
        return None, f"source unreadable: {type(exc).__name__}: {exc}"
    if len(source) != row["source_bytes"]:
        return None, f"source is {len(source)} bytes, manifest says {row['source_bytes']}"
    return source, ""


def decode_check(row: dict[str, Any]) -> str:
    """Which check proves the row's decode: ``decoded_sha256`` (exact decoders) or ``metrics`` (inexact)."""
    if row.get("container") == "copy" or not row.get("codec"):
        return "decoded_sha256"
    try:
        return "decoded_sha256" if get_codec(row["codec"]).exact_decode else "metrics"
    except Exception:  # an unknown codec fails at decode with its own verdict
        return "decoded_sha256"


def _metrics_recheck(row: dict[str, Any], decoded: Any, storage_options: dict[str, Any] | None,
                     src: str | None = None) -> str | None:
    """For an inexact decoder: re-measure against the source; a detail when outside the tolerance."""
    from recodec.codecs.generative.decoding import pick_device
    from recodec.formats.source import read_image
    from recodec.metrics import compute_metrics

    source, why = _read_source(row, storage_options, src)
    if source is None:
        return f"cannot re-measure the inexact decode: {why}"
    image = read_image(source, options=_AS_RECORDED)
    if decoded.shape != image.array.shape:
        return f"decoded shape {decoded.shape} != source {image.array.shape}"
    metrics = compute_metrics(image.array, decoded, bit_depth=row.get("bit_depth"), nodata=image.nodata)
    recorded_device = (row.get("decoder") or "").rpartition("device=")[2] or "cpu"
    same = recorded_device == pick_device()
    off = []
    for name, (tol_same, tol_other) in INEXACT_TOLERANCE.items():
        was, now = row.get(name), getattr(metrics, name, None)
        if was is None or now is None or not (abs(was) < float("inf") and abs(now) < float("inf")):
            continue
        if abs(now - was) > (tol_same if same else tol_other):
            off.append(f"{name} {now:.4f} vs recorded {was:.4f}")
    if not off:
        return None
    return (f"re-decoded on {pick_device()} (recorded on {recorded_device}): " + ", ".join(off)
            + f"; tolerance {'same' if same else 'other'} device class: "
            + json.dumps({k: v[0 if same else 1] for k, v in INEXACT_TOLERANCE.items()}))


def _task_recheck(row: dict[str, Any], decoded: Any, task: Any, storage_options: dict[str, Any] | None,
                  src: str | None = None) -> tuple[str, str] | None:
    """Re-run the task model on the row's source (see :func:`_read_source`) and on ``decoded``."""
    from recodec.errors import RecodecError
    from recodec.formats.source import read_image

    source, why = _read_source(row, storage_options, src)
    if source is None:
        return "task_model_error", f"cannot re-run the task model: {why}"
    try:
        image = read_image(source)
        remeasured = task.judge(image.array, image.nodata)(decoded)
    except RecodecError as exc:
        return "task_model_error", str(exc)
    remeasured.pop("task_model_sha256", None)
    detail = _target_verdict(row, remeasured)
    return ("target_not_met", detail) if detail else None


def check_row(row: dict[str, Any], storage_options: dict[str, Any] | None = None,
              dst: str | None = None, task: Any = None, src: str | None = None) -> tuple[str, str]:
    """Check one manifest row against the DST at ``dst`` (default: its recorded ``dest_uri``).

    Returns ``(verdict, detail)``.  ``task`` (a loaded :class:`recodec.task.model.TaskModel`)
    re-measures the task metrics on the source under the SRC root ``src`` (default: from the row).
    """
    from recodec.container import decode_output
    from recodec.formats.source import read_image

    if row.get("_collision"):
        return "output_collision", row["_collision"]
    if dst is None:
        fs, path = url_to_fs(row["dest_uri"], storage_options)
    else:
        fs, path = dest_path(row, *url_to_fs(dst, storage_options), storage_options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return "missing", f"{full_url(fs, path)} does not exist"
    if len(data) != row["dest_bytes"]:
        return "size_mismatch", f"{len(data)} bytes, manifest says {row['dest_bytes']}"
    digest = sha256_hex(data)
    if digest != row["dest_sha256"]:
        return "sha256_mismatch", f"sha256 {digest}, manifest says {row['dest_sha256']}"
    try:
        if row.get("container") == "copy":  # a verbatim copy of the source: decode it as a source
            decoded = read_image(data, options=_AS_RECORDED).array
        else:
            codec = get_codec(row["codec"]).decoder_for(json.loads(row.get("codec_params") or "{}"))
            decoded = decode_output(data, codec=codec)
    except Exception as exc:
        return "decode_failed", f"{library_message(exc)}"
    if decode_check(row) == "metrics":
        off = _metrics_recheck(row, decoded, storage_options, src)
        if off:
            return "metrics_mismatch", off
    elif (got := pixel_sha256(decoded)) != row["decoded_sha256"]:
        return "pixels_mismatch", f"decoded pixels hash {got}, manifest says {row['decoded_sha256']}"
    kept = verify_kept(row, data, decoded, storage_options)
    if kept:
        return kept
    detail = _target_verdict(row) if row.get("status") == "ok" else None
    if detail:
        return "target_not_met", detail
    if task is not None and row.get("status") == "ok" and row.get("container") != "copy":
        failed = _task_recheck(row, decoded, task, storage_options, src)
        if failed:
            return failed
    return "ok", ""


class ReconcileWorker:
    """Ray actor body: checks batches of rows; a fresh actor per reconcile, so never the encoder."""

    def __init__(self, check_id: str, storage_options: dict[str, Any], dst: str | None = None,
                 task_model: Any = None, sources: dict[str, str] | None = None) -> None:
        self.check_id = check_id
        self.storage_options = storage_options
        self.dst = dst
        #: SRC root of each job (by job key) that a task re-check reopens sources under.
        self.sources = sources or {}
        self.worker = worker_name()
        self.task: Any = None
        self.task_error: str | None = None
        if task_model is not None:
            from recodec.errors import RecodecError
            from recodec.task.model import TaskModel
            from recodec.tasks.workers import pick_device

            try:  # once per actor
                self.task = TaskModel.from_ref(task_model, pick_device())
            except RecodecError as exc:
                self.task_error = str(exc)

    def check(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Verdict rows for a batch of manifest rows."""
        out = []
        for row in rows:
            try:
                if self.task_error and row.get("status") == "ok":
                    verdict, detail = "task_model_error", self.task_error
                else:
                    verdict, detail = check_row(row, self.storage_options, self.dst, self.task,
                                                src=self.sources.get(row["job_key"]))
            except Exception as exc:  # storage errors after retries: report, do not crash
                verdict, detail = "missing", f"unreadable: {library_message(exc)}"
            out.append({
                "schema_version": SCHEMA_VERSION, "check_id": self.check_id, "run_id": row["run_id"],
                "job_key": row["job_key"], "shard_id": row["shard_id"], "source_uri": row["source_uri"],
                "dest_uri": row["dest_uri"], "verdict": verdict, "check": decode_check(row),
                "detail": scrub(detail, self.storage_options),
                "encoder_worker": row["worker"], "worker": self.worker,
                "checked_at": dt.datetime.now(dt.timezone.utc),
            })
        return out


def verify(config: ReconcileConfig) -> dict[str, Any]:
    """Check every current ok output of DST on fresh actors; commit verdicts; return a summary.

    ``config.task_model`` (a local TorchScript path, never inside DST or a source folder)
    re-runs the task model and re-checks the task bounds of each row's target.
    """
    from recodec.task.model import read_model

    storage_options = config.storage_options
    unreadable: list[str] = []
    rows = rows_to_check(read_manifest(config.dst, storage_options, unreadable=unreadable))
    rows = mark_collisions(rows, config.dst, storage_options)
    from recodec.tasks.prune import pruned_outputs

    if pruned := pruned_outputs(config.dst, storage_options):  # deleted on purpose by `recodec prune`
        import pyarrow.compute as pc

        rows = rows.filter(pc.invert(pc.is_in(rows["dest_uri"], pa.array(sorted(pruned), pa.string()))))
    sources = {u[: len(u) - len(k)] for u, k in zip(rows.column("source_uri").to_pylist(),
                                                     rows.column("source_key").to_pylist()) if u and k}
    model = read_model(config.task_model, [config.dst, *sorted(sources)]) if config.task_model else None
    check_id = new_run_id()
    sink = PartSink(config.dst, storage_options)
    counts: dict[str, int] = {}
    failures: list[dict[str, str]] = []
    part_no = 0

    def on_result(batch: pa.Table, verdicts: list[dict[str, Any]]) -> None:
        nonlocal part_no
        sink.write_part(to_table(verdicts, RECONCILE_SCHEMA), reconcile_part_path(sink.root, check_id, part_no))
        part_no += 1
        for v in verdicts:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
            if v["verdict"] != "ok":
                failures.append({k: v[k] for k in ("dest_uri", "verdict", "detail")})

    def on_error(batch: pa.Table, exc: BaseException) -> None:
        raise RuntimeError(f"reconcile worker failed: {exc}") from exc

    if rows.num_rows:
        ensure_ray(config.ray_address)
        roots = job_sources(config, rows.column("job_key").unique().to_pylist()) if model else {}
        actors = start_actors(ReconcileWorker, (check_id, storage_options, config.dst, model, roots),
                              config.workers, 0)
        try:
            run_bounded(actors, iter_batches(rows, config.batch_size),
                        lambda a, b: a.check.remote(b.to_pylist()), on_result, on_error)
        finally:
            stop_actors(actors)
    failures.extend({"dest_uri": p, "verdict": "unreadable_part", "detail": ""} for p in unreadable)
    return {"check_id": check_id, "checked": rows.num_rows, "verdicts": counts,
            "ok": counts.get("ok", 0) == rows.num_rows and not unreadable, "failures": failures,
            "unreadable_parts": unreadable}


def job_sources(config: ReconcileConfig, job_keys: list[str]) -> dict[str, str]:
    """The SRC root of each job: ``config.src`` when given, else the one its run recorded."""
    if config.src:
        return dict.fromkeys(job_keys, config.src)
    fs, root = url_to_fs(config.dst, config.storage_options)
    roots = {}
    for key in job_keys:
        try:
            roots[key] = json.loads(fs.cat_file(job_info_path(root, key)))["config"]["src"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no record (an older job): the row's source_uri gives its root
    return roots


def mark_collisions(rows: pa.Table, dst: str, storage_options: dict[str, Any] | None) -> pa.Table:
    """Add a ``_collision`` column: a detail for rows whose output another source also claims."""
    fs, root = url_to_fs(dst, storage_options)
    pylist = rows.to_pylist()
    detail: dict[int, str] = {}
    for group in collisions(pylist, fs, root, storage_options).values():
        sources = ", ".join(sorted(r["source_uri"] for r in group))
        for r in group:
            detail[id(r)] = f"one output, {len(group)} sources: {sources}"
    return rows.append_column("_collision", pa.array([detail.get(id(r)) for r in pylist], pa.string()))
