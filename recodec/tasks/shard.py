"""Process one shard on a worker: read sources, run the per-image pipeline, write outputs, stage a part.

The storage half of the per-image path (:mod:`recodec.pipeline` is the pixel half)::

    PlanItem --read_source (size + version pin)--> bytes --Pipeline.process--> ImageResult
    ImageResult payload --atomic_write--> DST/<dest_key>        row --> manifest part (staged)

Any error of one image becomes that image's ``failed`` row; it never stops the shard.
:class:`ShardWorker` is the Ray actor that runs :meth:`ShardContext.process_shard`; tests call
the context directly, without Ray.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recodec.digest import pixel_sha256, sha256_hex
from recodec.errors import RecodecError, RowFailure, TargetUnreachable, WorkerTainted
from recodec.formats.image import Image
from recodec.job import Job
from recodec.kept import check_georef_carriable, container_actions
from recodec.layout import manifest_part_path
from recodec.manifest import MANIFEST_SCHEMA, SCHEMA_VERSION, PartSink, to_table
from recodec.pipeline import ImageResult, Pipeline, image_columns
from recodec.storage import WriteGate, atomic_write, etag_of, flush, full_url, join, scrub, url_to_fs
from recodec.tasks.keep import write_sidecar
from recodec.tasks.lease import ShardLease, shard_lease
from recodec.tasks.planning import PlanItem, Shard, copy_key
from recodec.tasks.workers import limit_threads, local_worker_name, pick_device, worker_name
from recodec.vocabulary import BOUNDED, finite


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def base_row(job: Job, shard_id: int, item: PlanItem, src_fs: Any, src_root: str, *,
             codec_version: str | None = None, device: str | None = None,
             worker: str | None = None) -> dict[str, Any]:
    """The columns every manifest row has, whatever happens to the image."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": job.run_id,
        "job_key": job.job_key,
        "shard_id": shard_id,
        # Recorded verbatim (not validated here): a hostile key must still get its own row.
        "source_uri": full_url(src_fs, f"{src_root.rstrip('/')}/{item.key}"),
        "source_key": item.key,
        "source_bytes": item.size,
        "source_etag": item.etag,
        "codec": job.codec,
        "codec_params": json.dumps(job.params[job.codec] if job.codec in job.params else job.params,
                                   sort_keys=True, default=str),
        "codec_version": codec_version,
        "container": job.container,
        "target": job.target_text,
        "device": device,
        "worker": worker,
    }


def lost_shard_rows(job: Job, shard: Shard, exc: BaseException) -> list[dict[str, Any]]:
    """Failed rows for a shard whose worker died past its retries, so no image goes unrecorded."""
    src_fs, src_root = url_to_fs(job.src, job.storage_options)
    first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
    rows = []
    for item in shard.items:
        row = base_row(job, shard.shard_id, item, src_fs, src_root)
        row.update(status="failed", error=f"worker_lost: {type(exc).__name__}: {first_line}", created_at=_now())
        rows.append(row)
    return rows


class ImageThread:
    """One long-lived thread that runs images one at a time, so a caller can stop waiting.

    Reused across images because torch pays a set-up cost in every new thread (measured:
    metrics ~20% slower in a fresh thread per image than in a reused one).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Any, threading.Event, dict[str, Any]]] = queue.SimpleQueue()
        threading.Thread(target=self._loop, name="recodec-image", daemon=True).start()

    def _loop(self) -> None:
        while True:
            fn, done, box = self._jobs.get()
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed back to the waiting caller
                box["error"] = exc
            finally:
                done.set()

    def run(self, fn: Any, timeout: float) -> tuple[bool, Any]:
        """``(True, fn())`` if it finishes within ``timeout`` seconds, else ``(False, None)``."""
        done: threading.Event = threading.Event()
        box: dict[str, Any] = {}
        self._jobs.put((fn, done, box))
        if not done.wait(timeout):
            return False, None
        if "error" in box:
            raise box["error"]
        return True, box["result"]


class ShardContext:
    """Per-worker state reused across shards: the pipeline (codecs loaded once), filesystems, worker name."""

    def __init__(self, job: Job, *, worker: str = "local", device: str = "cpu") -> None:
        self.job = job
        self.worker = worker
        self.device = device
        self.pipeline = Pipeline(job, device=device)
        self.src_fs, self.src_root = url_to_fs(job.src, job.storage_options)
        self.dst_fs, self.dst_root = url_to_fs(job.dst, job.storage_options)
        self.sink = PartSink(job.dst, job.storage_options)
        self.tainted = False
        self.runner = ImageThread()
        #: Outputs written by the current shard, made durable together before its part is staged.
        self.written: list[str] = []

    def base_row(self, shard_id: int, item: PlanItem) -> dict[str, Any]:
        """The columns every row of this worker has, whatever happens to the image."""
        return base_row(self.job, shard_id, item, self.src_fs, self.src_root,
                        codec_version=self.pipeline.codec_version, device=self.device, worker=self.worker)

    def read_source(self, item: PlanItem) -> bytes:
        """Read a source object, checking it still matches its planned size and version pin."""
        path = join(self.src_root, item.key)
        try:
            info = self.src_fs.info(path)
        except FileNotFoundError:
            raise RowFailure(f"source {item.key!r} no longer exists", reason="source_missing") from None
        if etag_of(info) != item.etag:
            raise RowFailure(f"source changed since planning (version pin {item.etag})",
                             reason="source_changed")
        data = self.src_fs.cat_file(path)
        # Checked again after the read: a same-size overwrite during the read changes the pin.
        if len(data) != item.size or etag_of(self.src_fs.info(path)) != item.etag:
            raise RowFailure(f"source changed while reading ({len(data)} bytes, planned {item.size})",
                             reason="source_changed")
        return data

    def _scrub(self, text: str) -> str:
        return scrub(text, self.job.storage_options)

    def process_image(self, shard_id: int, item: PlanItem, gate: WriteGate | None = None) -> dict[str, Any]:
        """One image end to end; returns its manifest row (ok, failed or skipped), never raises.

        ``gate`` is revoked when the caller gave up waiting (timeout): no output is published
        after that, even by a write already in flight (:class:`recodec.storage.WriteGate`).
        """
        row = self.base_row(shard_id, item)
        source: bytes = b""
        try:
            t0 = time.perf_counter()
            source = self.read_source(item)
            fetch_seconds = time.perf_counter() - t0
            result = self.pipeline.process(source, name=item.key,
                                           on_read=lambda im, cols: row.update(image_columns(im), **cols))
            row.update(result.columns())
            row["read_seconds"] = fetch_seconds + result.read_seconds
            self.store(row, item, source, result, gate)
        except TargetUnreachable as exc:
            # Record how close the best-effort attempt got (the highest-quality one searched).
            tried = [r.measured for r in exc.result.results.values() if r.measured]
            closest = max(tried, key=lambda m: m.get("psnr") or -np.inf, default={})
            row.update(status="failed", attempts=exc.attempts, error=self._scrub(str(exc)),
                       search=json.dumps(exc.result.reasons),
                       **{k: finite(closest.get(k)) for k in BOUNDED if closest.get(k) is not None})
            self.copy_unchanged(row, item, source, exc.image, gate)
        except RecodecError as exc:
            row.update(status="failed", error=self._scrub(str(exc)))
        except MemoryError:
            row.update(status="failed", error="out_of_memory: image too large for this worker")
        except OSError as exc:  # storage: disk full, permissions, S3 errors past the retries
            row.update(status="failed", error=self._scrub(f"storage_error: {type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug or library fault must fail the row, not the shard
            row.update(status="failed", error=self._scrub(f"internal_error: {type(exc).__name__}: {exc}"))
        row["created_at"] = _now()
        return row

    def store(self, row: dict[str, Any], item: PlanItem, source: bytes, result: ImageResult,
              gate: WriteGate | None) -> None:
        """Write the output under its key (or skip it as ``no_gain``) and complete the row."""
        payload = result.encoded.payload
        if len(payload) >= item.size and not self.job.config.allow_growth:
            row.update(status="skipped", dest_sha256=None, decoded_sha256=None, error=(
                f"no_gain: output {len(payload)} bytes >= source {item.size} bytes; source kept"))
            self.copy_unchanged(row, item, source, result.image, gate)
            return
        container = result.encoded.container
        dest_key = self.job.output_key(item.key, item.dest_key, container, result.extension,
                                       item.keep_key) + result.suffix
        dest_path = join(self.dst_root, dest_key)
        check_georef_carriable(result.image, container)  # before anything is written
        t0 = time.perf_counter()
        atomic_write(self.dst_fs, dest_path, payload, durable=False, gate=gate)  # flushed per shard
        self.written.append(dest_path)
        georef, sidecar = write_sidecar(self.dst_fs, dest_path, result.image, container)
        self.written.extend([sidecar] if sidecar else [])
        transcoded = "transcoded_from" in result.encoded.params
        row.update(georef, content_actions=container_actions(result.image, container, transcoded),
                   dest_uri=full_url(self.dst_fs, dest_path), dest_key=dest_key, status="ok",
                   write_seconds=time.perf_counter() - t0)

    def copy_unchanged(self, row: dict[str, Any], item: PlanItem, source: bytes, image: Image | None,
                       gate: WriteGate | None = None) -> None:
        """With ``copy_unchanged``, put the source verbatim under its planned copy key and say so."""
        if not self.job.config.copy_unchanged or image is None:
            return
        dest_key = copy_key(item)
        dest_path = join(self.dst_root, dest_key)
        atomic_write(self.dst_fs, dest_path, source, durable=False, gate=gate)  # flushed per shard
        self.written.append(dest_path)
        row.update(container="copy", dest_uri=full_url(self.dst_fs, dest_path), dest_key=dest_key,
                   dest_bytes=len(source), dest_sha256=sha256_hex(source), decoded_sha256=pixel_sha256(image.array),
                   # the source itself: its profile and georeferencing travel with it
                   icc="carried" if image.icc_profile else None, georef="geotiff" if image.is_geotiff else None)

    def make_durable(self, rows: list[dict[str, Any]]) -> None:
        """Flush the shard's outputs; if that fails, no row may claim them (they become failed)."""
        try:
            flush(self.dst_fs, self.dst_root, self.written)
        except OSError as exc:
            error = self._scrub(f"storage_error: outputs not durable: {exc}")
            for path in self.written:
                try:
                    self.dst_fs.rm_file(path)
                except OSError:
                    pass  # what cannot be removed, audit reports as an orphan
            for row in rows:
                if row.get("dest_uri"):
                    row.update(status="failed", error=error, dest_uri=None, dest_key=None, dest_sha256=None)

    def process_with_timeout(self, shard_id: int, item: PlanItem) -> dict[str, Any]:
        """:meth:`process_image` on the worker's image thread, abandoned after ``image_timeout_s``.

        A decoder stuck in C code cannot be interrupted from Python, so its thread is left
        behind (daemon, its write gate revoked) and the worker marks itself ``tainted``:
        the driver restarts the actor after the shard, which frees whatever the thread holds.
        An output the thread published just before the revoke is removed here.
        """
        timeout = self.job.config.image_timeout_s
        gate = WriteGate()
        finished, row = self.runner.run(lambda: self.process_image(shard_id, item, gate), timeout)
        if finished:
            return row
        for path in gate.revoke():
            try:
                self.dst_fs.rm_file(path)
            except FileNotFoundError:
                pass
        self.tainted = True
        self.runner = ImageThread()  # the stuck one keeps its job; the rest of the shard goes on
        row = self.base_row(shard_id, item)
        row.update(status="failed", created_at=_now(),
                   error=f"timeout: no result after {timeout:g} s; worker restarted")
        return row

    def lease(self, shard_id: int) -> ShardLease:
        """This run's lease on one shard of the job."""
        return shard_lease(self.dst_fs, self.dst_root, self.job, shard_id)

    def process_shard(self, shard: Shard) -> "ShardResult":
        """Take the shard's lease, process every image and stage (write, not commit) its part.

        A shard leased by another live run, or already committed, is returned untouched.
        """
        final = manifest_part_path(self.dst_root, self.job.job_key, shard.shard_id)
        lease = self.lease(shard.shard_id)
        if not lease.acquire():
            return ShardResult(shard.shard_id, None, final, leased_by=str(lease.holder.get("run_id")))
        if self.dst_fs.exists(final):  # another run committed it since this run listed its parts
            lease.release()
            return ShardResult(shard.shard_id, None, final, already_committed=True)
        rows = []
        self.written = []
        for item in shard.items:
            row = self.process_with_timeout(shard.shard_id, item)
            row.setdefault("created_at", _now())
            rows.append(row)
            lease.refresh()
        self.make_durable(rows)
        staging: str | None = self.sink.start()
        try:
            self.sink.write(staging, to_table(rows, MANIFEST_SCHEMA))
        except Exception:  # storage failing past its retries: hand the rows to the driver instead
            self.sink.cleanup(staging)
            staging = None
        result = ShardResult.from_rows(shard.shard_id, staging, final, rows)
        result.restart_worker = self.tainted
        return result


@dataclass
class ShardResult:
    """What a worker returns for a shard: where its staged part is, and summary counts."""

    shard_id: int
    #: Staged part, or None when the worker could not write it (then ``rows`` carries the rows).
    staging: str | None
    final: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0
    source_bytes: int = 0
    dest_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    #: The worker abandoned a stuck image thread and should be replaced by a fresh process.
    restart_worker: bool = False
    rows: list[dict[str, Any]] | None = None
    #: Another live run holds the shard's lease (its run id): nothing was done here.
    leased_by: str | None = None
    #: Another run committed the shard before this one started it: nothing was done here.
    already_committed: bool = False

    @classmethod
    def from_rows(cls, shard_id: int, staging: str | None, final: str,
                  rows: list[dict[str, Any]]) -> "ShardResult":
        """Summarise the rows of a shard (and keep them when no part was staged)."""
        res = cls(shard_id, staging, final, rows=None if staging else rows)
        for row in rows:
            status = row["status"]
            setattr(res, status, getattr(res, status) + 1)
            if status == "ok":
                res.source_bytes += row["source_bytes"] or 0
                res.dest_bytes += row["dest_bytes"] or 0
            elif status == "failed":
                res.errors.append(f"{row['source_key']}: {row['error']}")
        return res


class ShardWorker:
    """Ray actor body: holds one :class:`ShardContext` (codecs loaded once) and processes shards.

    ``in_process``: the same body in the driver for a small job (:class:`recodec.tasks.workers.Pool`),
    given one CPU's threads like an actor (torch's default, one per core, oversubscribes a busy node).
    """

    def __init__(self, job: Job, *, in_process: bool = False) -> None:
        limit_threads(1 if in_process else None)
        self.ctx = ShardContext(job, worker=local_worker_name() if in_process else worker_name(),
                                device=pick_device())

    def run(self, shard: Shard) -> ShardResult:
        """Process one shard and return its :class:`ShardResult` (part staged, not committed)."""
        if self.ctx.tainted:
            # A stuck image thread from the previous shard still lives here: refuse new work; the
            # driver restarts this actor and resubmits the shard to the fresh process.
            raise WorkerTainted(self.ctx.worker)
        return self.ctx.process_shard(shard)

    def name(self) -> str:
        """This actor's worker name."""
        return self.ctx.worker
