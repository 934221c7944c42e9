"""Every path under DST's state folder (``DST/_recodec/``): one owner, asked by every layer.

::

    DST/_recodec/jobs/<job_key>/job.json                         what the job is (no secrets)
    DST/_recodec/jobs/<job_key>/plan/shard-<id>.json              shard plan (persisted, reused by re-runs)
    DST/_recodec/jobs/<job_key>/plan/_COMPLETE.json               written last: the plan is complete
    DST/_recodec/staging/<uuid>.parquet                           parts being written (never read)
    DST/_recodec/leases/job=<job_key>/shard=<id>.json             the run working on a shard
    DST/_recodec/manifest/job=<job_key>/shard=<id>.parquet        committed manifest parts
    DST/_recodec/reconcile/<check_id>/part-<n>.parquet            committed reconcile verdicts
    DST/_recodec/jobs/<job_key>/delta/<run_id>.json               what an incremental re-run found
    DST/_recodec/retire/<retire_id>/part-<n>.parquet              retirement log (written before each action)
    DST/_recodec/prune/<prune_id>/part-<n>.parquet                prune log (written before each deletion)
    DST/_recodec/report/report.html (+ .json)                     the scheduled job's savings report

Pure path arithmetic (posix paths relative to a filesystem root): no I/O here.
"""

from __future__ import annotations

import posixpath
import uuid

#: Where recodec keeps its own state under DST: plans, manifest parts, verdicts.
STATE_DIR = "_recodec"
#: Kinds of committed Parquet parts, each a folder under the state folder.
PART_KINDS = ("manifest", "reconcile", "retire", "prune")


def state_path(root: str, *parts: str) -> str:
    """Path of recodec's own state under the DST root."""
    return posixpath.join(root, STATE_DIR, *parts)


def is_state_name(name: str) -> bool:
    """True for a folder name that is (or looks like) recodec's state: never listed as a source."""
    return name.startswith(STATE_DIR)


def is_under_state(root: str, path: str) -> bool:
    """True when ``path`` is the state folder of ``root`` or inside it."""
    state = state_path(root)
    return path == state or path.startswith(state + "/")


def jobs_dir(root: str) -> str:
    """Folder holding one folder per planned job."""
    return state_path(root, "jobs")


def job_info_path(root: str, job_key: str) -> str:
    """The job's description (codec, params, public config)."""
    return state_path(root, "jobs", job_key, "job.json")


def plan_dir(root: str, job_key: str) -> str:
    """Folder of a job's persisted shard plan."""
    return state_path(root, "jobs", job_key, "plan")


def plan_shard_path(root: str, job_key: str, shard_id: int) -> str:
    """One persisted shard of a job's plan."""
    return posixpath.join(plan_dir(root, job_key), f"shard-{shard_id:08d}.json")


def plan_complete_path(root: str, job_key: str) -> str:
    """Marker written last: the plan is complete and is reused by re-runs."""
    return posixpath.join(plan_dir(root, job_key), "_COMPLETE.json")


def is_plan_shard(path: str) -> bool:
    """True for a persisted shard file (not the completion marker)."""
    return path.rsplit("/", 1)[-1].startswith("shard-")


def parts_dir(root: str, kind: str) -> str:
    """Folder of committed parts of ``kind`` ("manifest" or "reconcile")."""
    if kind not in PART_KINDS:
        raise ValueError(f"part kind must be one of {PART_KINDS}, got {kind!r}")
    return state_path(root, kind)


def manifest_job_dir(root: str, job_key: str) -> str:
    """Folder of a job's committed manifest parts."""
    return state_path(root, "manifest", f"job={job_key}")


def manifest_part_path(root: str, job_key: str, shard_id: int) -> str:
    """Final (committed) path of one shard's manifest part."""
    return posixpath.join(manifest_job_dir(root, job_key), f"shard={shard_id:08d}.parquet")


def staging_dir(root: str) -> str:
    """Folder of parts being written (never read by anyone)."""
    return state_path(root, "staging")


def new_staging_path(root: str) -> str:
    """A fresh, unique staging path for one part."""
    return posixpath.join(staging_dir(root), f"{uuid.uuid4().hex}.parquet")


def reconcile_part_path(root: str, check_id: str, part_no: int) -> str:
    """Final path of one batch of verdicts of a reconcile check."""
    return state_path(root, "reconcile", check_id, f"part-{part_no:06d}.parquet")


def delta_record_path(root: str, job_key: str, run_id: str) -> str:
    """What one incremental re-run of a job found (new, changed, retried, disappeared)."""
    return state_path(root, "jobs", job_key, "delta", f"{run_id}.json")


def action_part_path(root: str, kind: str, action_id: str, seq: int) -> str:
    """One part of an action log: ``kind`` is "retire" or "prune"."""
    if kind not in ("retire", "prune"):
        raise ValueError(f"action log kind must be retire or prune, got {kind!r}")
    return state_path(root, kind, action_id, f"part-{seq:08d}.parquet")


def report_path(root: str) -> str:
    """The savings report the scheduled job writes (JSON beside it)."""
    return state_path(root, "report", "report.html")


def leases_dir(root: str, job_key: str) -> str:
    """Folder of a job's shard leases (only shards being worked on have one)."""
    return state_path(root, "leases", f"job={job_key}")


def lease_path(root: str, job_key: str, shard_id: int) -> str:
    """The lease of one shard: which run works on it, until when."""
    return posixpath.join(leases_dir(root, job_key), f"shard={shard_id:08d}.json")
