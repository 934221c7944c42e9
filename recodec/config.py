"""Typed configuration of a recompression job.

Precedence, lowest to highest: these defaults < ``--config FILE.yaml`` < CLI flags.
Storage options (endpoint, credentials) come from the config file's
``storage_options`` section or from the environment that fsspec and botocore read
(``AWS_*``, ``AWS_ENDPOINT_URL``, ``FSSPEC_S3_ENDPOINT_URL``...).  They are never
written to plans, manifests or logs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from recodec.content import DEFAULT_MAX_IMAGE_BYTES
from recodec.errors import ConfigError, RecodecError

#: Images per shard when the config does not set one (see ``RunConfig.shard_size``).
DEFAULT_SHARD_SIZE = 64
DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp", ".jp2", ".j2k",
)


@dataclass
class RunConfig:
    """Everything a ``recodec run`` needs; JSON-serialisable (it is a Prefect flow parameter)."""

    src: str
    dst: str
    codec: str
    quality: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: "auto" (GeoTIFF container for GeoTIFF sources where TIFF can hold the codec), "raw" or "geotiff".
    container: str = "auto"
    #: Target-quality expression, e.g. "psnr>=40,ssim>=0.95" (None: encode at the given knob).
    target: str | None = None
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    #: Images per shard.  None (the default): 64, or fewer for a small job so that every
    #: worker gets a shard; a number given here (or ``--shard-size``) is used as is.
    shard_size: int | None = None
    shard_bytes: int = 512 * 1024 * 1024
    #: Number of Ray actors; 0 means one per CPU of the Ray cluster.
    workers: int = 0
    #: GPUs requested per actor when the cluster has GPUs (ignored on CPU-only clusters).
    gpus_per_worker: float = 1.0
    ray_address: str | None = None
    #: Where the workers run: "ray" (actors), "local" (one worker in this process: no Ray to
    #: start or stop) or "auto": local for a small job -- at most ``local_max_images`` sources
    #: totalling at most 64 MiB, no ``ray_address``, Ray not already running here -- else Ray.
    executor: str = "auto"
    #: The most sources "auto" runs in this process (0: always Ray).
    local_max_images: int = 8
    #: Shards queued per actor beyond the one it is working on (bounds driver and object-store memory).
    queue_per_worker: int = 1
    max_pixels: int = 400_000_000
    #: Memory budget of one decoded source raster: width x height x bands x bytes per sample.
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    #: Keep only the first frame/page of multi-frame sources (else they fail ``multiframe``).
    first_frame_only: bool = False
    #: Record decoder warnings on ``ok`` rows instead of failing them ``corrupt_source``.
    accept_warnings: bool = False
    #: Seconds one image may take before its worker is stopped and the row fails with "timeout".
    image_timeout_s: float = 300.0
    #: Keep an output even when it is not smaller than its source (default: skip with "no_gain").
    allow_growth: bool = False
    #: For images left unchanged (no_gain, target_unreachable), write a verbatim copy to DST so
    #: that DST is a complete archive; the row keeps its status and says ``container = "copy"``.
    copy_unchanged: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    #: Declared sensor bit depth of >8-bit integer sources (e.g. 11 or 12): the PSNR peak is
    #: ``2**bit_depth - 1``.  None: a narrower header depth, else each image's valid data range.
    bit_depth: int | None = None
    #: On a re-run, also reprocess sources whose latest row failed with a retryable reason
    #: (:data:`recodec.errors.RETRYABLE_REASONS`); not part of the job key.
    retry_failed: bool = False
    #: Allow GeoTIFF outputs in TIFF compressions common GDAL builds cannot read (JPEG XL,
    #: JPEG 2000): see recodec/gdalcompat.py. Off, those codecs write their own format instead.
    tiff_any_compression: bool = False
    #: Cloud-optimised GeoTIFF outputs (overviews in the same codec, COG IFD order); None: when
    #: the source is a COG. Applies to the GeoTIFF container only.
    cog: bool | None = None
    #: Local TorchScript file (with its sidecar) whose answers give the task_* metrics.
    task_model: str | None = None

    #: Fields that must come from the command line or the config file.
    REQUIRED: ClassVar[tuple[str, ...]] = ("src", "dst", "codec")

    def validate(self) -> "RunConfig":
        """Check value ranges; return self."""
        if self.shard_size is not None and self.shard_size < 1:
            raise ConfigError("shard_size must be >= 1")
        if self.shard_bytes < 1:
            raise ConfigError("shard_bytes must be >= 1")
        if self.workers < 0:
            raise ConfigError("workers must be >= 0")
        if self.gpus_per_worker < 0:
            raise ConfigError("gpus_per_worker must be >= 0")
        if self.executor not in {"auto", "ray", "local"}:
            raise ConfigError(f"executor must be auto, ray or local, got {self.executor!r}")
        if self.executor == "local" and self.ray_address:
            raise ConfigError("executor local runs in this process: it cannot use ray_address")
        if self.local_max_images < 0:
            raise ConfigError("local_max_images must be >= 0")
        if self.max_image_bytes < 1:
            raise ConfigError("max_image_bytes must be >= 1")
        if self.container not in {"auto", "raw", "geotiff"}:
            raise ConfigError(f"container must be auto, raw or geotiff, got {self.container!r}")
        if self.bit_depth is not None and not 1 <= self.bit_depth <= 32:
            raise ConfigError(f"bit_depth must be 1..32, got {self.bit_depth}")
        if self.src.rstrip("/") == self.dst.rstrip("/"):
            raise ConfigError("SRC and DST must differ: recodec never writes over its sources")
        return self

    def job_key(self, resolved_params: dict[str, Any], *, task_model_sha256: str | None = None) -> str:
        """Identity of the *work* (not the invocation): same key means re-runs resume.

        Changing the codec, its parameters, the container or the target gives a new key, so the
        affected images are processed again; shard size and worker count do not change it.
        """
        ident = {
            "src": self.src.rstrip("/"),
            "codec": self.codec,
            "params": resolved_params,
            "container": self.container,
            "target": self.target,
            "allow_growth": self.allow_growth,
            "copy_unchanged": self.copy_unchanged,
            "extensions": sorted(self.extensions),
        }
        if self.bit_depth is not None:  # only when set, so older jobs keep their keys
            ident["bit_depth"] = self.bit_depth
        # Content options change what is written; added only when set, so existing keys stay valid.
        ident.update({k: True for k in ("first_frame_only", "accept_warnings") if getattr(self, k)})
        if self.tiff_any_compression:  # only when set, so the keys of existing jobs stay the same
            ident["tiff_any_compression"] = True
        if self.cog is not None:
            ident["cog"] = self.cog
        if task_model_sha256:  # another model is other work (absent otherwise: older keys unchanged)
            ident["task_model"] = task_model_sha256
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        return digest[:16]

    def public_dict(self) -> dict[str, Any]:
        """The config without storage options (safe to persist or log)."""
        d = asdict(self)
        d.pop("storage_options", None)
        return d


def as_run_config(value: "RunConfig | dict[str, Any]") -> RunConfig:
    """A validated RunConfig from a flow parameter: deployed runs pass plain JSON dicts."""
    if isinstance(value, RunConfig):
        return value
    data = dict(value)
    unknown = sorted(set(data) - {f.name for f in fields(RunConfig)})
    if unknown:
        raise ConfigError(f"unknown run settings: {', '.join(unknown)}")
    if "extensions" in data:
        data["extensions"] = tuple(data["extensions"])
    return RunConfig(**data).validate()


@dataclass
class ReconcileConfig:
    """Everything ``recodec reconcile`` needs (same precedence: defaults < YAML < CLI)."""

    dst: str
    #: Number of Ray actors; 0 means one per CPU of the Ray cluster.
    workers: int = 0
    ray_address: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    #: SRC as given to ``recodec run``: where a task re-check reopens sources (by SRC root + key).
    #: None: each job's SRC as its run recorded it.
    src: str | None = None
    #: Manifest rows checked per actor call.
    batch_size: int = 64
    #: Local TorchScript file whose task bounds reconcile re-measures (recodec.task).
    task_model: str | None = None

    REQUIRED: ClassVar[tuple[str, ...]] = ("dst",)

    def validate(self) -> "ReconcileConfig":
        """Check value ranges; return self."""
        if self.workers < 0:
            raise ConfigError("workers must be >= 0")
        if self.batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        return self


@dataclass
class AuditConfig:
    """Everything ``recodec audit`` needs (same precedence: defaults < YAML < CLI)."""

    dst: str
    #: Also check that every source is unchanged since it was recorded.
    src: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[tuple[str, ...]] = ("dst",)

    def validate(self) -> "AuditConfig":
        """Nothing to range-check; return self."""
        return self


AnyConfig = TypeVar("AnyConfig", RunConfig, ReconcileConfig, AuditConfig)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into a dict of RunConfig fields (one file serves every command)."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data.pop("report", None)  # the report's own section (recodec.report.prices), not a run setting
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)}")
    if "extensions" in data:
        data["extensions"] = tuple(data["extensions"])
    return data


def _quality_knobs(codec_spec: str) -> set[str]:
    """Knob names that ``--quality`` sets for these codecs (unknown codecs: none; prepare_job reports them)."""
    from recodec.codecs import expand_codecs, get_codec

    try:
        codecs = [get_codec(name) for name in expand_codecs(codec_spec)]
    except RecodecError:
        return set()
    return {c.knob.name for c in codecs if c.knob.quality_shortcut}


def build_config(file_values: dict[str, Any], overrides: dict[str, Any],
                 cls: type[AnyConfig] = RunConfig) -> AnyConfig:  # type: ignore[assignment]
    """Merge defaults < file values < CLI overrides (None means "not given") into a validated ``cls``.

    The file's keys that ``cls`` does not have are ignored (one YAML serves every command).
    ``--quality`` on the command line wins over a quality knob set in the file's params.
    """
    names = {f.name for f in fields(cls)}
    merged = {k: v for k, v in file_values.items() if k in names}
    if overrides.get("quality") is not None and merged.get("params"):
        codec = overrides.get("codec") or merged.get("codec") or ""
        knobs = _quality_knobs(codec)
        merged["params"] = {k: v for k, v in merged["params"].items() if k not in knobs}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "params":
            merged["params"] = {**merged.get("params", {}), **value}
        else:
            merged[key] = value
    for required in cls.REQUIRED:
        if not merged.get(required):
            raise ConfigError(f"missing {required} (give it on the command line or in the config file)")
    return cls(**merged).validate()


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse repeated ``key=value`` CLI items into a dict (values stay strings; codecs coerce)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out
