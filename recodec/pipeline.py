"""One image, one path: read, choose the container once, encode (or search), decode, measure, hash.

No DST I/O and no Ray here: :mod:`recodec.tasks.shard` reads the source bytes, calls
:meth:`Pipeline.process` and writes what it returns; tests and benchmarks call it directly::

    source bytes --read_image--> Image --choose_container (once per codec)-->
        fixed knob:  encode --> payload --decode--> decoded --measure--> Metrics
        target:      search over candidates (each attempt encodes, decodes once, measures)
    --> ImageResult(image, Encoded(payload, decoded, metrics...), hashes, bpp)

With ``--task-model`` (recodec.task) the model's answer on the source is computed once, and
each decoded attempt gets the task_* metrics too (a target may bound them).

A target that no candidate meets raises :class:`~recodec.errors.TargetUnreachable`, carrying
the search (how close it got) and the image.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recodec.codecs import Codec, get_codec
from recodec.container import choose_container, container_of, decode_output, encode_output, output_extension
from recodec.content import ReadOptions, pixels_as_stored
from recodec.formats.cog import is_cog
from recodec.digest import pixel_sha256, sha256_hex
from recodec.errors import DecodeError, RecodecError, TargetUnreachable
from recodec.formats.bandpack import BANDPACK_SUFFIX, is_band_pack
from recodec.formats.image import Image
from recodec.formats.source import read_image
from recodec.kept import check_kept, content_columns
from recodec.masks import FIXUP_SUFFIX, is_fixup
from recodec.vocabulary import METRICS, finite, metric_columns

if TYPE_CHECKING:
    from recodec.job import Job
    from recodec.metrics import Metrics
    from recodec.target import Target


@dataclass
class Encoded:
    """The chosen encoding of one image, what its decoder really returned, and its quality."""

    payload: bytes
    decoded: np.ndarray
    codec: Codec
    #: The codec's name as the job gave it (registry name or "module:Class"), for the manifest.
    codec_name: str
    params: dict[str, Any]
    container: str
    metrics: "Metrics"
    encode_seconds: float
    decode_seconds: float
    #: Seconds computing metrics (every attempt of a search), decode excluded.
    metrics_seconds: float = 0.0
    #: Encodes tried: 1 with a fixed knob, the search cost with a target.
    attempts: int = 1
    #: Target search only: why each candidate codec won, lost or was skipped.
    search: dict[str, str] | None = None
    #: task_* columns with ``--task-model`` (recodec.task), else None.
    task: dict[str, Any] | None = None
    #: generative, decoder, plain_psnr for a generative decoder (docs/generative.md), else None.
    generative: dict[str, Any] | None = None


@dataclass
class ImageResult:
    """What :func:`process_image` returns: the source image, its encoding, and their hashes."""

    image: Image
    encoded: Encoded
    bpp: float
    dest_sha256: str
    decoded_sha256: str
    #: Seconds decoding the source bytes into pixels (the task adds its fetch time).
    read_seconds: float = 0.0
    #: Seconds hashing the output bytes and the decoded pixels.
    hash_seconds: float = 0.0
    #: Columns of what the output kept (``icc``), from :func:`recodec.kept.check_kept`.
    kept: dict[str, Any] | None = None

    @property
    def extension(self) -> str:
        """Extension of the output: the codec's own, or ".tif" for the geotiff container."""
        return output_extension(self.encoded.codec, self.encoded.container)

    @property
    def suffix(self) -> str:
        """Appended to the output key: ".rcbp" for a raw band pack, ".rcmk" for a mask fix-up (no viewer
        opens either: say so), else ""."""
        enc = self.encoded
        if is_fixup(enc.payload):
            inner = enc.payload[9 + int.from_bytes(enc.payload[5:9], "little"):]
            return (BANDPACK_SUFFIX if is_band_pack(inner) else "") + FIXUP_SUFFIX
        return BANDPACK_SUFFIX if enc.container == "raw" and is_band_pack(enc.payload) else ""

    def columns(self) -> dict[str, Any]:
        """The manifest columns this result fills (image, codec, size, metrics, timings, hashes)."""
        enc = self.encoded
        return {
            **image_columns(self.image),
            "codec": enc.codec_name,
            "codec_params": json.dumps(enc.params, sort_keys=True, default=str),
            "container": enc.container,
            "attempts": enc.attempts,
            "search": json.dumps(enc.search) if enc.search else None,
            "dest_bytes": len(enc.payload),
            "dest_sha256": self.dest_sha256,
            **metric_columns(enc.metrics, self.bpp),
            "metric_peak_rule": enc.metrics.peak_rule,
            **task_columns(enc.task),
            "encode_seconds": enc.encode_seconds,
            "decode_seconds": enc.decode_seconds,
            "read_seconds": self.read_seconds,
            "metrics_seconds": enc.metrics_seconds,
            "hash_seconds": self.hash_seconds,
            "decoded_sha256": self.decoded_sha256,
            **(enc.generative or {"generative": False}),
            **(self.kept or {}),
        }


#: Manifest columns of the task metric family (recodec.task): its metrics and the model's hash.
TASK_COLUMNS = (*(m.name for m in METRICS if m.task), "task_model_sha256")


def task_columns(measured: Any) -> dict[str, Any]:
    """The task_* columns of a measured dict (floats: NaN -> null); {} without a task model."""
    if not measured:
        return {}
    return {k: (measured.get(k) if k == "task_model_sha256" else finite(measured.get(k))) for k in TASK_COLUMNS}


def with_task(measure: Callable[[bytes], Any], judge: Callable[[np.ndarray], dict[str, Any]]) -> Callable[[bytes], Any]:
    """A candidate's ``measure`` that also runs the task model on the decoded array."""
    def run(data: bytes) -> dict[str, Any]:
        out = dict(measure(data))
        out.update(judge(out["decoded"]))
        return out
    return run


def image_columns(image: Image) -> dict[str, Any]:
    """The manifest columns known as soon as the source is read."""
    return {"width": image.width, "height": image.height, "bands": image.bands, "dtype": image.dtype.name,
            "source_format": image.format, "bit_depth": image.bit_depth, **content_columns(image)}


class _Timer:
    """Accumulates encode, decode and measure seconds across the attempts of a search."""

    def __init__(self) -> None:
        self.seconds = {"encode": 0.0, "decode": 0.0, "measure": 0.0}

    def wrap(self, kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds[kind] += time.perf_counter() - t0
        return run


class Pipeline:
    """Per-worker state of the per-image path: the job, its codecs (loaded once) and the device."""

    def __init__(self, job: "Job", *, device: str = "cpu") -> None:
        self.job = job
        self.device = device
        self.codecs = {name: get_codec(name) for name in job.params}
        for codec in self.codecs.values():
            codec.load()
        self.codec_version = ", ".join(c.version() for c in self.codecs.values())
        self.task: Any = None
        self.task_error: RecodecError | None = None
        if job.task_model is not None:
            from recodec.task.model import TaskModel

            try:  # loaded once per worker; a failure fails each row (task_model_error), not the run
                self.task = TaskModel.from_ref(job.task_model, device)
            except RecodecError as exc:
                self.task_error = exc

    def process(self, source: bytes, *, name: str = "",
                on_read: Callable[[Image, dict[str, Any]], None] | None = None) -> ImageResult:
        """One image end to end; ``on_read`` sees the image and its target columns as soon as it is decoded."""
        from recodec.target import image_target

        config = self.job.config
        t0 = time.perf_counter()
        image = read_image(source, name=name, options=ReadOptions(
            max_pixels=config.max_pixels, max_image_bytes=config.max_image_bytes,
            first_frame_only=config.first_frame_only, accept_warnings=config.accept_warnings))
        read_seconds = time.perf_counter() - t0
        # A relative bound ("max_abs_error<=0.5%") becomes absolute for this image's range.
        target, target_columns = image_target(self.job.target, image.array, image.nodata)
        if on_read is not None:
            on_read(image, target_columns)
        # COG outputs by default for COG sources (GeoTIFF container only).  Decided per image and
        # passed down, never kept on the pipeline: one image cannot set the next one's layout.
        cog = is_cog(source) if config.cog is None else config.cog
        judge = self.task_judge(image)
        enc = (self.search(image, target, judge, cog=cog) if target is not None
               else self.encode(image, source, cog=cog))
        if judge is not None and enc.task is None:
            enc.task = judge(enc.decoded)
        if enc.codec.generative:
            enc.generative = self.generative_columns(image, enc)
        kept = check_kept(image, enc.payload, enc.decoded)  # mask_changed fails the row here
        t1 = time.perf_counter()
        dest_sha256, decoded_sha256 = sha256_hex(enc.payload), pixel_sha256(enc.decoded)
        return ImageResult(image, enc, bpp=len(enc.payload) * 8 / (image.width * image.height),
                           dest_sha256=dest_sha256, decoded_sha256=decoded_sha256, read_seconds=read_seconds,
                           hash_seconds=time.perf_counter() - t1, kept=kept)

    def encode(self, image: Image, source: bytes, *, cog: bool = False) -> Encoded:
        """Encode with the job's fixed params (or losslessly transcode the source), decode once, measure.

        ``cog``: lay a GeoTIFF output out as a cloud-optimised GeoTIFF.
        """
        (name, params), = self.job.params.items()
        codec = self.codecs[name]
        container = choose_container(image, codec, self.job.container,
                                     any_tiff_compression=self.job.config.tiff_any_compression)
        t0 = time.perf_counter()
        # A transcode keeps the stored pixels: only when the reader did not have to change them.
        transcode = container == "raw" and pixels_as_stored(image.actions)
        payload = codec.transcode(source, image.format, params) if transcode else None
        if payload is not None:
            # Say so in the manifest: the knob was not applied, the source's own bitstream was re-coded.
            params = {**params, "transcoded_from": image.format}
        else:
            # the requested container: "auto" may fall back to raw when a GeoTIFF would move the mask
            payload = encode_output(image, codec, params, container=self.job.container, cog=cog,
                                    any_tiff_compression=self.job.config.tiff_any_compression)
        t1 = time.perf_counter()
        decoded = decode_output(payload, codec=codec.decoder_for(params))
        t2 = time.perf_counter()
        metrics = self.measure(image, decoded)
        return Encoded(payload, decoded, codec, name, params, container_of(payload, container), metrics,
                       t1 - t0, t2 - t1, metrics_seconds=time.perf_counter() - t2)

    def task_judge(self, image: Image) -> Callable[[np.ndarray], dict[str, Any]] | None:
        """With a task model: its answer on the original, as a function of a decoded array; else None."""
        if self.task_error is not None:
            raise self.task_error
        return self.task.judge(image.array, image.nodata) if self.task is not None else None

    def search(self, image: Image, target: "Target",
               judge: Callable[[np.ndarray], dict[str, Any]] | None = None, *, cog: bool = False) -> Encoded:
        """Smallest encoding meeting the job's target, over every candidate codec's knob.

        Each attempt encodes into the real output container (a COG layout with ``cog``) and
        decodes it once; the winner's decoded array and metrics are reused (no second decode).
        """
        from recodec.target import codec_candidate, search_codecs

        timer, candidates, containers = _Timer(), [], {}
        # Exact-bound codecs need one encode when max_abs_error is the only quality bound.
        exact = target.bound_value("max_abs_error") if {
            b.metric for b in target.quality_bounds} == {"max_abs_error"} else None
        for name, codec in self.codecs.items():
            containers[name] = choose_container(
                image, codec, self.job.container, any_tiff_compression=self.job.config.tiff_any_compression)
            candidates.append(codec_candidate(
                codec, image.array, params=self.job.params[name], bit_depth=self.bit_depth(image),
                nodata=image.nodata, device=self.device, max_error=exact,
                encoder=timer.wrap("encode", lambda arr, p, c=codec: encode_output(
                    image, c, p, container=self.job.container, cog=cog,
                    any_tiff_compression=self.job.config.tiff_any_compression)),
                decoder=timer.wrap("decode", lambda data, c=codec.decoder_for(self.job.params[name]):
                                   decode_output(data, codec=c)),
            ))
            candidates[-1].name = name  # the name the job used, which reconcile resolves again
            candidates[-1].measure = timer.wrap("measure", candidates[-1].measure)
            if judge is not None:
                candidates[-1].measure = with_task(candidates[-1].measure, judge)
        result = search_codecs(candidates, target)
        attempts = sum(r.attempts for r in result.results.values())
        if not result.met or result.best is None or result.best.data is None:
            raise TargetUnreachable(result, attempts, image)
        best, codec = result.best, self.codecs[result.codec]
        params = {**self.job.params[result.codec], codec.knob.name: best.knob_value}
        seconds = timer.seconds
        return Encoded(best.data, best.measured["decoded"], codec, result.codec, params,
                       container_of(best.data, containers[result.codec]),
                       best.measured["metrics"], seconds["encode"], seconds["decode"],
                       metrics_seconds=max(0.0, seconds["measure"] - seconds["decode"]),
                       attempts=attempts, search=result.reasons,
                       task=task_columns(best.measured) if judge is not None else None)

    def generative_columns(self, image: Image, enc: Encoded) -> dict[str, Any]:
        """A generative decoder's manifest columns: its label (settings, seed, weights, device class)
        and the PSNR of the stored stream's plain decode, so the quality of both views is recorded."""
        decoder = enc.codec.decoder_for(enc.params)
        plain = decode_output(enc.payload, codec=get_codec(decoder.plain_codec))
        return {"generative": True, "decoder": decoder.label(), "plain_psnr": self.measure(image, plain).psnr}

    def bit_depth(self, image: Image) -> int | None:
        """The bit depth the PSNR peak follows: the job's declared sensor depth, else the header's."""
        return self.job.config.bit_depth or image.bit_depth

    def measure(self, image: Image, decoded: np.ndarray) -> "Metrics":
        """Quality of what the decoder returned, against the source pixels."""
        from recodec.metrics import compute_metrics

        if decoded.shape != image.array.shape or decoded.dtype != image.array.dtype:
            raise DecodeError(
                f"decoded {decoded.dtype}{decoded.shape} != source {image.array.dtype}{image.array.shape}",
                reason="roundtrip_mismatch",
            )
        return compute_metrics(image.array, decoded, bit_depth=self.bit_depth(image), nodata=image.nodata,
                               device=self.device)


def process_image(source: bytes, job: "Job", *, device: str = "cpu", name: str = "") -> ImageResult:
    """Read, encode (or search), decode, measure and hash one source image for ``job``."""
    return Pipeline(job, device=device).process(source, name=name)
