"""Compress one shard: read, encode, decode, measure, write output, stage a manifest part.

Plain functions, no Ray or Prefect: the Ray actor in :mod:`recodec.tasks.workers` calls
:func:`process_shard`, and tests can call it directly.

Per image (``process_image``)::

    source bytes --read_image--> pixels --encode--> payload --decode--> decoded pixels
                                   \\________________ metrics ________________/
    payload --atomic_write--> DST/<dest_key>        row --> manifest part (staged)

Any error of one image becomes that image's ``failed`` row; it never stops the shard.
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

from recodec.codecs import Codec, get_codec
from recodec.codecs.base import is_band_pack
from recodec.digest import pixel_sha256, sha256_hex
from recodec.errors import DecodeError, RecodecError
from recodec.manifest import MANIFEST_SCHEMA, SCHEMA_VERSION, PartSink, manifest_part_path, to_table
from recodec.storage import atomic_write, flush, full_url, join, scrub, url_to_fs
from recodec.tasks.planning import PlanItem, Shard


@dataclass
class JobSpec:
    """What a worker needs to process shards of one job (picklable; secrets stay in storage_options)."""

    src: str
    dst: str
    #: The codec as the user gave it: a name, "auto" or a comma-separated list.
    codec: str
    #: Resolved params per candidate codec, in order of preference (one entry without a list).
    params: dict[str, dict[str, Any]]
    container: str
    job_key: str
    run_id: str
    #: Extension the plan gave to dest keys ("" when the codec is chosen per image).
    plan_extension: str = ""
    target: str | None = None
    max_pixels: int = 400_000_000
    image_timeout_s: float = 300.0
    allow_growth: bool = False
    copy_unchanged: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Encoded:
    """The chosen encoding of one image and what its decoder really returned."""

    payload: bytes
    decoded: np.ndarray
    codec: Codec
    params: dict[str, Any]
    container: str
    encode_seconds: float
    decode_seconds: float
    attempts: int = 1
    metrics: Any = None
    #: Target search only: why each candidate codec won, lost or was skipped.
    search: dict[str, str] | None = None
    #: The codec's name as the job gave it (registry name or "module:Class"), for the manifest.
    codec_name: str = ""


class RowFailure(RecodecError):
    """A per-image failure whose reason is set by the pipeline itself (size, etag...)."""


class TargetUnreachable(RecodecError):
    """No candidate codec met the target; carries the search so the row can show how close it got."""

    reason = "target_unreachable"

    def __init__(self, result: Any, attempts: int) -> None:
        detail = "; ".join(f"{name}: {why}" for name, why in result.reasons.items())
        super().__init__(detail or "no candidate could encode the image")
        self.result = result
        self.attempts = attempts


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _finite(x: float | None) -> float | None:
    """Manifest floats: +inf PSNR (identical pixels) is kept; NaN becomes null."""
    if x is None:
        return None
    x = float(x)
    return None if np.isnan(x) else x


def encode_once(image: Any, codec: Codec, params: dict[str, Any], container: str,
                source: bytes) -> Encoded:
    """Encode with fixed params (or a lossless transcode of the source), then decode once."""
    from recodec.imageio import decode_output, encode_output

    t0 = time.perf_counter()
    payload = codec.transcode(source, image.format, params) if container == "raw" else None
    if payload is not None:
        # Say so in the manifest: the knob was not applied, the source's own bitstream was re-coded.
        params = {**params, "transcoded_from": image.format}
    else:
        payload = encode_output(image, codec, params, container=container)
    t1 = time.perf_counter()
    decoded = decode_output(payload, codec=codec)
    t2 = time.perf_counter()
    return Encoded(payload, decoded, codec, params, container, t1 - t0, t2 - t1)


def base_row(spec: JobSpec, shard_id: int, item: PlanItem, src_fs: Any, src_root: str, *,
             codec_version: str | None = None, device: str | None = None,
             worker: str | None = None) -> dict[str, Any]:
    """The columns every manifest row has, whatever happens to the image."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": spec.run_id,
        "job_key": spec.job_key,
        "shard_id": shard_id,
        # Recorded verbatim (not validated here): a hostile key must still get its own row.
        "source_uri": full_url(src_fs, f"{src_root.rstrip('/')}/{item.key}"),
        "source_key": item.key,
        "source_bytes": item.size,
        "source_etag": item.etag,
        "codec": spec.codec,
        "codec_params": json.dumps(spec.params[spec.codec] if spec.codec in spec.params else spec.params,
                                   sort_keys=True, default=str),
        "codec_version": codec_version,
        "container": spec.container,
        "target": spec.target,
        "device": device,
        "worker": worker,
    }


#: Suffix of raw outputs that are band packs (bands coded in groups), e.g. ``scene.jxl.rcbp``.
BANDPACK_SUFFIX = ".rcbp"


def output_key(item: PlanItem, container: str, ext: str, planned_ext: str) -> str:
    """DST key of an output.

    A GeoTIFF re-written as a GeoTIFF keeps its key (a drop-in replacement for GIS catalogues).
    Otherwise the planned key, which is unique in its folder for ``planned_ext``; any other
    extension is appended to it, which keeps it unique.
    """
    if container == "geotiff" and item.key.lower().endswith((".tif", ".tiff")):
        return item.key
    return item.dest_key if ext == planned_ext else item.dest_key + ext


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
    """Per-worker state reused across shards: codec, filesystems, device and worker name."""

    def __init__(self, spec: JobSpec, *, worker: str = "local", device: str = "cpu") -> None:
        self.spec = spec
        self.worker = worker
        self.device = device
        self.codecs = {name: get_codec(name) for name in spec.params}
        for codec in self.codecs.values():
            codec.load()
        self.codec_version = ", ".join(c.version() for c in self.codecs.values())
        self.src_fs, self.src_root = url_to_fs(spec.src, spec.storage_options)
        self.dst_fs, self.dst_root = url_to_fs(spec.dst, spec.storage_options)
        self.sink = PartSink(spec.dst, spec.storage_options)
        self.tainted = False
        self.runner = ImageThread()
        #: Outputs written by the current shard, made durable together before its part is staged.
        self.written: list[str] = []

    def base_row(self, shard_id: int, item: PlanItem) -> dict[str, Any]:
        """The columns every row of this worker has, whatever happens to the image."""
        return base_row(self.spec, shard_id, item, self.src_fs, self.src_root,
                        codec_version=self.codec_version, device=self.device, worker=self.worker)

    def read_source(self, item: PlanItem) -> bytes:
        """Read a source object, checking it still matches its planned size and version pin."""
        from recodec.storage import etag_of

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

    def encode(self, image: Any, source: bytes) -> Encoded:
        """Encode an image as the job asks (fixed params, or a target-quality search)."""
        from recodec.imageio import choose_container

        if self.spec.target:
            return self.search(image)
        (name, params), = self.spec.params.items()
        codec = self.codecs[name]
        enc = encode_once(image, codec, params, choose_container(image, codec, self.spec.container), source)
        enc.metrics = self.measure(image, enc.decoded)
        enc.codec_name = name
        return enc

    def search(self, image: Any) -> Encoded:
        """Smallest encoding meeting the job's target, over every candidate codec's knob.

        Each attempt encodes into the real output container and decodes it once; the
        winner's decoded array and metrics are reused (no second decode).
        """
        from recodec.imageio import choose_container, decode_output, encode_output
        from recodec.target import codec_candidate, parse_target, search_codecs

        timing = {"encode": 0.0, "decode": 0.0}

        def timed(kind: str, fn: Any) -> Any:
            def run(*args: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*args)
                finally:
                    timing[kind] += time.perf_counter() - t0
            return run

        candidates, containers = [], {}
        for name, codec in self.codecs.items():
            container = containers[name] = choose_container(image, codec, self.spec.container)
            candidates.append(codec_candidate(
                codec, image.array, params=self.spec.params[name], bit_depth=image.bit_depth,
                nodata=image.nodata, device=self.device,
                encoder=timed("encode", lambda arr, p, c=codec, k=container: encode_output(
                    image, c, p, container=k)),
                decoder=timed("decode", lambda data, c=codec: decode_output(data, codec=c)),
            ))
            candidates[-1].name = name  # the name the job used, which reconcile resolves again
        result = search_codecs(candidates, parse_target(self.spec.target))
        attempts = sum(r.attempts for r in result.results.values())
        if not result.met or result.best is None or result.best.data is None:
            raise TargetUnreachable(result, attempts)
        best, codec = result.best, self.codecs[result.codec]
        params = {**self.spec.params[result.codec], codec.knob.name: best.knob_value}
        return Encoded(best.data, best.measured["decoded"], codec, params, containers[result.codec],
                       timing["encode"], timing["decode"], attempts=attempts,
                       metrics=best.measured["metrics"], search=result.reasons, codec_name=result.codec)

    def measure(self, image: Any, decoded: np.ndarray) -> Any:
        """Quality of what the decoder returned, against the source pixels."""
        from recodec.metrics import compute_metrics

        if decoded.shape != image.array.shape or decoded.dtype != image.array.dtype:
            raise DecodeError(
                f"decoded {decoded.dtype}{decoded.shape} != source {image.array.dtype}{image.array.shape}",
                reason="roundtrip_mismatch",
            )
        return compute_metrics(image.array, decoded, bit_depth=image.bit_depth, nodata=image.nodata,
                               device=self.device)

    def process_image(self, shard_id: int, item: PlanItem,
                      abandoned: threading.Event | None = None) -> dict[str, Any]:
        """One image end to end; returns its manifest row (ok, failed or skipped), never raises.

        ``abandoned`` is set when the caller gave up waiting (timeout): nothing is written then.
        """
        from recodec.imageio import output_extension, read_image

        row = self.base_row(shard_id, item)
        try:
            source = self.read_source(item)
            image = read_image(source, max_pixels=self.spec.max_pixels, name=item.key)
            row.update(width=image.width, height=image.height, bands=image.bands,
                       dtype=image.dtype.name, source_format=image.format, bit_depth=image.bit_depth)
            enc = self.encode(image, source)
            m = enc.metrics
            row.update(
                codec=enc.codec_name or enc.codec.name,
                codec_params=json.dumps(enc.params, sort_keys=True, default=str),
                container=enc.container,
                attempts=enc.attempts,
                search=json.dumps(enc.search) if enc.search else None,
                dest_bytes=len(enc.payload),
                dest_sha256=sha256_hex(enc.payload),
                bpp=len(enc.payload) * 8 / (image.width * image.height),
                psnr=_finite(m.psnr), ssim=_finite(m.ssim), ms_ssim=_finite(m.ms_ssim),
                max_abs_error=_finite(m.max_abs_error), sam=_finite(m.sam),
                psnr_per_band=[_finite(v) for v in m.psnr_per_band], metric_peak=_finite(m.peak),
                encode_seconds=enc.encode_seconds, decode_seconds=enc.decode_seconds,
                decoded_sha256=pixel_sha256(enc.decoded),
            )
            if len(enc.payload) >= item.size and not self.spec.allow_growth:
                row.update(status="skipped", dest_sha256=None, decoded_sha256=None, error=(
                    f"no_gain: output {len(enc.payload)} bytes >= source {item.size} bytes; source kept"))
                self.copy_unchanged(row, item, source, image)
                return row
            dest_key = output_key(item, enc.container, output_extension(enc.codec, enc.container),
                                  self.spec.plan_extension)
            if enc.container == "raw" and is_band_pack(enc.payload):
                dest_key += BANDPACK_SUFFIX  # no viewer opens a band pack: say so in the name
            dest_path = join(self.dst_root, dest_key)
            if abandoned is not None and abandoned.is_set():
                raise RowFailure("gave up waiting; output not written", reason="timeout")
            atomic_write(self.dst_fs, dest_path, enc.payload, durable=False)  # flushed per shard
            self.written.append(dest_path)
            row.update(dest_uri=full_url(self.dst_fs, dest_path), status="ok")
        except TargetUnreachable as exc:
            # Record how close the best-effort attempt got (the highest-quality one searched).
            tried = [r.measured for r in exc.result.results.values() if r.measured]
            closest = max(tried, key=lambda m: m.get("psnr") or -np.inf, default={})
            row.update(status="failed", attempts=exc.attempts, error=scrub(str(exc), self.spec.storage_options),
                       search=json.dumps(exc.result.reasons),
                       **{k: _finite(closest.get(k)) for k in ("psnr", "ssim", "ms_ssim", "max_abs_error", "bpp")
                          if closest.get(k) is not None})
            self.copy_unchanged(row, item, source, image)
        except RecodecError as exc:
            row.update(status="failed", error=scrub(str(exc), self.spec.storage_options))
        except MemoryError:
            row.update(status="failed", error="out_of_memory: image too large for this worker")
        except OSError as exc:  # storage: disk full, permissions, S3 errors past the retries
            row.update(status="failed", error=scrub(f"storage_error: {type(exc).__name__}: {exc}",
                                                    self.spec.storage_options))
        except Exception as exc:  # a bug or library fault must fail the row, not the shard
            row.update(status="failed", error=scrub(f"internal_error: {type(exc).__name__}: {exc}",
                                                    self.spec.storage_options))
        row["created_at"] = _now()
        return row

    def copy_unchanged(self, row: dict[str, Any], item: PlanItem, source: bytes, image: Any) -> None:
        """With ``copy_unchanged``, put the source verbatim under its own key in DST and say so."""
        if not self.spec.copy_unchanged:
            return
        dest_path = join(self.dst_root, item.key)
        atomic_write(self.dst_fs, dest_path, source, durable=False)  # flushed per shard
        self.written.append(dest_path)
        row.update(container="copy", dest_uri=full_url(self.dst_fs, dest_path), dest_bytes=len(source),
                   dest_sha256=sha256_hex(source), decoded_sha256=pixel_sha256(image.array))

    def make_durable(self, rows: list[dict[str, Any]]) -> None:
        """Flush the shard's outputs; if that fails, no row may claim them (they become failed)."""
        try:
            flush(self.dst_fs, self.dst_root, self.written)
        except OSError as exc:
            error = scrub(f"storage_error: outputs not durable: {exc}", self.spec.storage_options)
            for path in self.written:
                try:
                    self.dst_fs.rm_file(path)
                except OSError:
                    pass  # what cannot be removed, audit reports as an orphan
            for row in rows:
                if row.get("dest_uri"):
                    row.update(status="failed", error=error, dest_uri=None, dest_sha256=None)

    def process_with_timeout(self, shard_id: int, item: PlanItem) -> dict[str, Any]:
        """:meth:`process_image` on the worker's image thread, abandoned after ``image_timeout_s``.

        A decoder stuck in C code cannot be interrupted from Python, so its thread is left
        behind (daemon, told not to write anything) and the worker marks itself ``tainted``:
        the driver restarts the actor after the shard, which frees whatever the thread holds.
        """
        abandoned = threading.Event()
        finished, row = self.runner.run(lambda: self.process_image(shard_id, item, abandoned),
                                        self.spec.image_timeout_s)
        if finished:
            return row
        abandoned.set()
        self.tainted = True
        self.runner = ImageThread()  # the stuck one keeps its job; the rest of the shard goes on
        row = self.base_row(shard_id, item)
        row.update(status="failed", created_at=_now(),
                   error=f"timeout: no result after {self.spec.image_timeout_s:g} s; worker restarted")
        return row

    def process_shard(self, shard: Shard) -> "ShardResult":
        """Process every image of a shard and stage (write, not commit) its manifest part."""
        rows = []
        self.written = []
        for item in shard.items:
            row = self.process_with_timeout(shard.shard_id, item)
            row.setdefault("created_at", _now())
            rows.append(row)
        self.make_durable(rows)
        final = manifest_part_path(self.dst_root, self.spec.job_key, shard.shard_id)
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
