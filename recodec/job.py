"""One job, made once by :func:`prepare_job` and passed down to planning, workers and the pipeline.

A :class:`Job` holds the validated config, the resolved params of every candidate codec, the
parsed target, the job key (identity of the work: same key, re-runs resume), the run id
(identity of the invocation) and the output naming.  It is picklable (Ray ships it to every
actor) and holds secrets only inside ``config.storage_options``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recodec.codecs import expand_codecs, get_codec
from recodec.config import RunConfig
from recodec.errors import ConfigError

if TYPE_CHECKING:
    from recodec.target import Target


def new_run_id() -> str:
    """A sortable, unique id for one invocation: UTC time plus random suffix."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def resolve_candidates(codec_spec: str, params: dict[str, Any], quality: float | None,
                       target: "Target | None" = None) -> dict[str, dict[str, Any]]:
    """Resolved params per candidate codec; with several codecs each gets the params it knows.

    A parameter that no candidate knows is an error, and so is ``--quality`` when no candidate
    has a 1-100 quality, so nobody silently gets a default.  ``auto`` under a target that
    bounds max_abs_error also tries the exact-bound codecs (:data:`BOUNDED_AUTO_CODECS`).
    """
    bounded = target is not None and target.bound_value("max_abs_error") is not None
    names = expand_codecs(codec_spec, bounded=bounded)
    if len(names) == 1:
        return {names[0]: get_codec(names[0]).resolve_params(params, quality=quality)}
    out: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for name in names:
        codec = get_codec(name)
        mine = {k: v for k, v in params.items() if k in codec.all_params()}
        used.update(mine)
        out[name] = codec.resolve_params(mine, quality=quality if codec.knob.quality_shortcut else None)
    unknown = sorted(set(params) - used)
    if unknown:
        raise ConfigError(f"no candidate codec has parameter(s) {', '.join(unknown)}")
    if quality is not None and not any(get_codec(n).knob.quality_shortcut for n in names):
        raise ConfigError("--quality needs a codec with a 1-100 quality; use --param")
    return out


@dataclass
class Job:
    """Everything below the flow needs to know about one job (made once, passed down)."""

    config: RunConfig
    #: Resolved params per candidate codec, in order of preference (one entry without a list).
    params: dict[str, dict[str, Any]]
    #: The parsed target, or None to encode at the given knob.
    target: "Target | None"
    job_key: str
    run_id: str
    #: Extension the plan gives to dest keys ("" when the codec is chosen per image).
    plan_extension: str = ""
    #: The ``--task-model`` as read by the driver (recodec.task.model.TaskModelRef), or None.
    task_model: Any = None
    #: The driver process (host, pid, start time), recorded in shard leases.
    driver: dict[str, Any] = field(default_factory=dict)

    @property
    def src(self) -> str:
        """Source URL."""
        return self.config.src

    @property
    def dst(self) -> str:
        """Destination URL."""
        return self.config.dst

    @property
    def codec(self) -> str:
        """The codec as the user gave it: a name, "auto" or a comma-separated list."""
        return self.config.codec

    @property
    def container(self) -> str:
        """Requested container: "auto", "raw" or "geotiff"."""
        return self.config.container

    @property
    def target_text(self) -> str | None:
        """The target as the user wrote it (recorded in every row)."""
        return self.config.target

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec options (may hold secrets: never persisted)."""
        return self.config.storage_options

    def output_key(self, source_key: str, planned_key: str, container: str, ext: str,
                   keep_key: str | None = None) -> str:
        """DST key of an output.

        A GeoTIFF re-written as a GeoTIFF keeps its key (a drop-in replacement for GIS catalogues)
        when the plan reserved it (``keep_key``; None: a plan older than that field).  Otherwise
        the planned key; any other extension is appended to it.  The plan claimed every such name
        for this source alone (:mod:`recodec.tasks.naming`).
        """
        keep = source_key if keep_key is None else keep_key
        if container == "geotiff" and keep and source_key.lower().endswith((".tif", ".tiff")):
            return keep
        return planned_key if ext == self.plan_extension else planned_key + ext


def prepare_job(config: RunConfig) -> Job:
    """Resolve codec params and parse the target (failing fast on bad ones); derive key and run id.

    SRC and DST are checked separately (:func:`recodec.locations.check_storage`), by the flow
    and by the CLI before Prefect starts.
    """
    from recodec.container import output_extension
    from recodec.target import parse_target
    from recodec.task.model import prepare_task_model
    from recodec.tasks.lease import driver_identity

    target = parse_target(config.target) if config.target else None  # fails before listing anything
    params = resolve_candidates(config.codec, config.params, config.quality, target)
    if target is None and len(params) > 1:
        raise ConfigError("several codecs need a --target to choose between them")
    task_model = prepare_task_model(config.task_model, target, [config.src, config.dst])
    (first, *rest) = params
    plan_ext = "" if rest else output_extension(
        get_codec(first), "geotiff" if config.container == "geotiff" else "raw")
    key = config.job_key(params, task_model_sha256=task_model.sha256 if task_model else None)
    return Job(config=config, params=params, target=target, job_key=key,
               run_id=config.run_id or new_run_id(), plan_extension=plan_ext, task_model=task_model,
               driver=driver_identity())
