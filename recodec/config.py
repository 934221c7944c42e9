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
from typing import Any

from recodec.errors import ConfigError

DEFAULT_EXTENSIONS: tuple[str, ...] = (
    ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp", ".jp2", ".j2k",
)
#: Where recodec keeps its own state under DST: plans, manifest parts, verdicts.
STATE_DIR = "_recodec"


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
    shard_size: int = 64
    shard_bytes: int = 512 * 1024 * 1024
    #: Number of Ray actors; 0 means one per CPU of the Ray cluster.
    workers: int = 0
    #: GPUs requested per actor when the cluster has GPUs (ignored on CPU-only clusters).
    gpus_per_worker: float = 1.0
    ray_address: str | None = None
    #: Shards queued per actor beyond the one it is working on (bounds driver and object-store memory).
    queue_per_worker: int = 1
    max_pixels: int = 400_000_000
    #: Seconds one image may take before its worker is stopped and the row fails with "timeout".
    image_timeout_s: float = 300.0
    #: Keep an output even when it is not smaller than its source (default: skip with "no_gain").
    allow_growth: bool = False
    #: For images left unchanged (no_gain, target_unreachable), write a verbatim copy to DST so
    #: that DST is a complete archive; the row keeps its status and says ``container = "copy"``.
    copy_unchanged: bool = False
    storage_options: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    def validate(self) -> "RunConfig":
        """Check value ranges; return self."""
        if self.shard_size < 1:
            raise ConfigError("shard_size must be >= 1")
        if self.shard_bytes < 1:
            raise ConfigError("shard_bytes must be >= 1")
        if self.workers < 0:
            raise ConfigError("workers must be >= 0")
        if self.gpus_per_worker < 0:
            raise ConfigError("gpus_per_worker must be >= 0")
        if self.container not in {"auto", "raw", "geotiff"}:
            raise ConfigError(f"container must be auto, raw or geotiff, got {self.container!r}")
        if self.src.rstrip("/") == self.dst.rstrip("/"):
            raise ConfigError("SRC and DST must differ: recodec never writes over its sources")
        return self

    def job_key(self, resolved_params: dict[str, Any]) -> str:
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
        digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        return digest[:16]

    def public_dict(self) -> dict[str, Any]:
        """The config without storage options (safe to persist or log)."""
        d = asdict(self)
        d.pop("storage_options", None)
        return d


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file into a dict of RunConfig fields."""
    import yaml

    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    known = {f.name for f in fields(RunConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)}")
    if "extensions" in data:
        data["extensions"] = tuple(data["extensions"])
    return data


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> RunConfig:
    """Merge file values and CLI overrides (None means "not given") into a validated RunConfig."""
    merged = dict(file_values)
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "params":
            merged["params"] = {**merged.get("params", {}), **value}
        else:
            merged[key] = value
    for required in ("src", "dst", "codec"):
        if not merged.get(required):
            raise ConfigError(f"missing {required} (give it on the command line or in the config file)")
    return RunConfig(**merged).validate()


def parse_params(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Parse repeated ``key=value`` CLI items into a dict (values stay strings; codecs coerce)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out
