"""Reconcile: prove every committed ``ok`` row's output is there, intact and decodable.

For the newest ok row of each output object (``dest_uri``), a fresh Ray actor — never
one that encoded anything — checks, in order:

1. the object exists                                     -> else ``missing``
2. its size equals ``dest_bytes``                        -> else ``size_mismatch`` (truncated / grown)
3. its SHA-256 equals ``dest_sha256``                    -> else ``sha256_mismatch`` (bit flip)
4. it decodes with the recorded codec                    -> else ``decode_failed``
5. the decoded pixels hash to ``decoded_sha256``         -> else ``pixels_mismatch``
6. recorded metrics meet the recorded target, if any     -> else ``target_not_met``

Verdicts are committed as Parquet parts under ``DST/_recodec/reconcile/<check_id>/``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa

from recodec.codecs import get_codec
from recodec.digest import pixel_sha256, sha256_hex
from recodec.manifest import (
    RECONCILE_SCHEMA,
    SCHEMA_VERSION,
    PartSink,
    iter_batches,
    newest_per,
    read_manifest,
    state_path,
    to_table,
)
from recodec.storage import scrub, url_to_fs
from recodec.tasks.workers import ensure_ray, run_bounded, start_actors, stop_actors, worker_name


def rows_to_check(manifest: pa.Table) -> pa.Table:
    """The newest row per output object (ok outputs and verbatim copies): what DST must match now."""
    return newest_per(manifest, "dest_uri", where="dest_uri IS NOT NULL")


def _target_verdict(row: dict[str, Any]) -> str | None:
    if not row.get("target"):
        return None
    from recodec.target import parse_target

    target = parse_target(row["target"])
    measured = {k: row.get(k) for k in ("psnr", "ssim", "ms_ssim", "max_abs_error", "bpp")}
    if target.satisfied(measured):
        return None
    return f"recorded metrics {json.dumps(measured)} do not meet target {row['target']}"


def check_row(row: dict[str, Any], storage_options: dict[str, Any] | None = None) -> tuple[str, str]:
    """Check one manifest row against storage; returns ``(verdict, detail)``."""
    from recodec.imageio import decode_output, read_image

    fs, path = url_to_fs(row["dest_uri"], storage_options)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return "missing", f"{row['dest_uri']} does not exist"
    if len(data) != row["dest_bytes"]:
        return "size_mismatch", f"{len(data)} bytes, manifest says {row['dest_bytes']}"
    digest = sha256_hex(data)
    if digest != row["dest_sha256"]:
        return "sha256_mismatch", f"sha256 {digest}, manifest says {row['dest_sha256']}"
    try:
        if row.get("container") == "copy":  # a verbatim copy of the source: decode it as a source
            decoded = read_image(data).array
        else:
            decoded = decode_output(data, codec=get_codec(row["codec"]))
    except Exception as exc:
        return "decode_failed", f"{type(exc).__name__}: {exc}"
    got = pixel_sha256(decoded)
    if got != row["decoded_sha256"]:
        return "pixels_mismatch", f"decoded pixels hash {got}, manifest says {row['decoded_sha256']}"
    detail = _target_verdict(row) if row.get("status") == "ok" else None
    if detail:
        return "target_not_met", detail
    return "ok", ""


class ReconcileWorker:
    """Ray actor body: checks batches of rows; a fresh actor per reconcile, so never the encoder."""

    def __init__(self, check_id: str, storage_options: dict[str, Any]) -> None:
        self.check_id = check_id
        self.storage_options = storage_options
        self.worker = worker_name()

    def check(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Verdict rows for a batch of manifest rows."""
        out = []
        for row in rows:
            try:
                verdict, detail = check_row(row, self.storage_options)
            except Exception as exc:  # storage errors after retries: report, do not crash
                verdict, detail = "missing", f"unreadable: {type(exc).__name__}: {exc}"
            out.append({
                "schema_version": SCHEMA_VERSION, "check_id": self.check_id, "run_id": row["run_id"],
                "job_key": row["job_key"], "shard_id": row["shard_id"], "source_uri": row["source_uri"],
                "dest_uri": row["dest_uri"], "verdict": verdict,
                "detail": scrub(detail, self.storage_options),
                "encoder_worker": row["worker"], "worker": self.worker,
                "checked_at": dt.datetime.now(dt.timezone.utc),
            })
        return out


def verify(dst: str, *, workers: int = 0, ray_address: str | None = None,
           storage_options: dict[str, Any] | None = None, batch_size: int = 64) -> dict[str, Any]:
    """Check every current ok output of DST on fresh actors; commit verdicts; return a summary."""
    from recodec.tasks.jobs import new_run_id

    storage_options = storage_options or {}
    rows = rows_to_check(read_manifest(dst, storage_options))
    check_id = new_run_id()
    sink = PartSink(dst, storage_options)
    counts: dict[str, int] = {}
    failures: list[dict[str, str]] = []
    part_no = 0

    def on_result(batch: pa.Table, verdicts: list[dict[str, Any]]) -> None:
        nonlocal part_no
        sink.write_part(to_table(verdicts, RECONCILE_SCHEMA),
                        state_path(sink.root, "reconcile", check_id, f"part-{part_no:06d}.parquet"))
        part_no += 1
        for v in verdicts:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
            if v["verdict"] != "ok":
                failures.append({k: v[k] for k in ("dest_uri", "verdict", "detail")})

    def on_error(batch: pa.Table, exc: BaseException) -> None:
        raise RuntimeError(f"reconcile worker failed: {exc}") from exc

    if rows.num_rows:
        ensure_ray(ray_address)
        actors = start_actors(ReconcileWorker, (check_id, storage_options), workers, 0)
        try:
            run_bounded(actors, iter_batches(rows, batch_size), lambda a, b: a.check.remote(b.to_pylist()),
                        on_result, on_error)
        finally:
            stop_actors(actors)
    return {"check_id": check_id, "checked": rows.num_rows, "verdicts": counts,
            "ok": counts.get("ok", 0) == rows.num_rows, "failures": failures}
