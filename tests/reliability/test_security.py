"""Hostile keys never escape DST and fail as unsafe_key; credentials never show up anywhere."""

from __future__ import annotations

import json
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recodec.config import RunConfig
from recodec.errors import StorageError
from recodec.manifest import read_verdicts
from recodec.tasks.shard import ShardContext
from tests.reliability.faults import png_bytes
from tests.reliability.helpers import (
    assert_audit_clean,
    assert_one_row_each,
    commit,
    job_config,
    prepare_shards,
    reason,
    rows_of,
    run_job,
)

#: Keys relative to SRC that must never become a path: traversal, dot segments, backslashes, controls.
UNSAFE_S3_KEYS = ["../escape.png", "a/../../escape2.png", "./dot.png", "back\\slash.png", "ctl\x01.png",
                  "esc\x1b[31m.png"]
UNSAFE_LOCAL_NAMES = ["back\\slash.png", "new\nline.png", "esc\x1b[31m.png", "tab\t.png", "del\x7f.png"]


def _process_all(config: RunConfig) -> None:
    """Plan and run every shard of a job in this process (no Ray), committing each part."""
    spec, shards = prepare_shards(config)
    ctx = ShardContext(spec)
    for shard in shards:
        commit(ctx, ctx.process_shard(shard))


def _assert_unsafe_rows(rows: dict[str, dict[str, Any]], unsafe: list[str]) -> None:
    for key in unsafe:
        assert reason(rows[key]) == "unsafe_key", (key, rows[key]["error"])
        assert rows[key]["dest_uri"] is None


def test_unsafe_s3_keys(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    bucket = s3_bucket.removeprefix("s3://")
    for key in ["ok.png", *UNSAFE_S3_KEYS]:
        fs.pipe_file(f"{bucket}/archive/{key}", png_bytes(1))
    before = set(fs.find(bucket))

    src, dst = f"{s3_bucket}/archive", f"{s3_bucket}/out"
    _process_all(job_config(src, dst, shard_size=3, storage_options=s3_options))

    rows = assert_one_row_each(rows_of(dst, s3_options), ["ok.png", *UNSAFE_S3_KEYS])
    assert rows["ok.png"]["status"] == "ok"
    _assert_unsafe_rows(rows, UNSAFE_S3_KEYS)
    written = set(fs.find(bucket)) - before
    assert written and all(p.startswith(f"{bucket}/out/") for p in written), sorted(written)
    assert_audit_clean(src, dst, s3_options)


def test_unsafe_local_names(tmp_path: Path, src: Path, dst: Path) -> None:
    for name in ["ok.png", *UNSAFE_LOCAL_NAMES]:
        (src / name).write_bytes(png_bytes(2))
    outside = {p for p in tmp_path.rglob("*")}

    _process_all(job_config(src, dst, shard_size=3))

    rows = assert_one_row_each(rows_of(dst), ["ok.png", *UNSAFE_LOCAL_NAMES])
    assert rows["ok.png"]["status"] == "ok"
    _assert_unsafe_rows(rows, UNSAFE_LOCAL_NAMES)
    new = {p for p in tmp_path.rglob("*")} - outside
    assert all(p.is_relative_to(dst) for p in new), sorted(map(str, new))
    assert sorted(p.name for p in dst.rglob("*.jpg")) == ["ok.jpg"]
    assert_audit_clean(src, dst)


def test_s3_key_with_empty_segment_gets_a_row(s3_bucket: str, s3_options: dict[str, Any]) -> None:
    import s3fs

    fs = s3fs.S3FileSystem(**s3_options)
    bucket = s3_bucket.removeprefix("s3://")
    for key in ["archive/ok.png", "archive//x.png"]:
        fs.pipe_file(f"{bucket}/{key}", png_bytes(3))
    src, dst = f"{s3_bucket}/archive", f"{s3_bucket}/out"
    _process_all(job_config(src, dst, storage_options=s3_options))
    rows = assert_one_row_each(rows_of(dst, s3_options), ["ok.png", "/x.png"])
    _assert_unsafe_rows(rows, ["/x.png"])


# -- credentials --------------------------------------------------------------------------------


@pytest.fixture
def iam_key(s3_server: str) -> Iterator[tuple[str, str]]:
    """A real moto IAM access key (id, secret) allowed s3:*; moto checks signatures while it is in use."""
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_server, region_name="us-east-1")
    user = f"recodec-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    yield key["AccessKeyId"], key["SecretAccessKey"]


def _ray_logs() -> str:
    """Every Ray log of this session (actors' stdout/stderr included), as text."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    if node is None:
        return ""
    logs = Path(node.get_session_dir_path()) / "logs"
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in logs.rglob("*") if p.is_file())


@pytest.mark.usefixtures("ray_local", "prefect_harness")
def test_credentials_never_leak(s3_bucket: str, s3_options: dict[str, Any],
                                iam_key: tuple[str, str], capfd: pytest.CaptureFixture[str],
                                caplog: pytest.LogCaptureFixture) -> None:
    import s3fs
    from moto.core.authorization import enable_iam_authentication

    from recodec.config import ReconcileConfig

    from recodec.flows.reconcile import reconcile

    key_id, secret = iam_key
    wrong = secret[::-1]
    fs = s3fs.S3FileSystem(**s3_options)
    src, dst = f"{s3_bucket}/src", f"{s3_bucket}/dst"
    good = png_bytes(4)
    fs.pipe({f"{src.removeprefix('s3://')}/{k}": v for k, v in
             {"a.png": good, "b.png": png_bytes(5), "broken.png": good[:200]}.items()})
    options = {**s3_options, "key": key_id, "secret": secret}

    with enable_iam_authentication():  # from here on moto checks every request's signature
        summary = run_job(job_config(src, dst, executor="ray", storage_options=options))
        verdicts = reconcile(ReconcileConfig(dst, workers=1, storage_options=options))
        with pytest.raises(Exception) as refused:  # the wrong secret is refused by the store
            run_job(job_config(src, f"{s3_bucket}/dst2", executor="ray", storage_options={**options, "secret": wrong}))

    assert summary["ok"] == 2 and summary["failed"] == 1 and verdicts["ok"]
    # Refused by the store at the pre-flight read of SRC, as one clear error (the store's reason kept).
    assert isinstance(refused.value, (PermissionError, StorageError)), repr(refused.value)
    assert not fs.exists(f"{s3_bucket}/dst2/_recodec/jobs")  # nothing written with it
    out, err = capfd.readouterr()
    places = {
        "manifest": str(rows_of(dst, s3_options)),
        "reconcile verdicts": str(read_verdicts(dst, s3_options).to_pylist()),
        "summary": str(summary) + str(verdicts),
        "job and plan files": "".join(fs.cat_file(p).decode() for p in fs.find(f"{dst}/_recodec/jobs")),
        "error": "".join(traceback.format_exception(refused.value)),
        "stdout": out, "stderr": err, "logs": caplog.text, "ray logs": _ray_logs(),
    }
    assert "decode_error" in places["manifest"] and "Forbidden" in places["error"]  # the places are real
    for name, text in places.items():
        assert secret not in text and wrong not in text, f"credential found in {name}"


@pytest.mark.usefixtures("prefect_harness")
def test_credentials_not_stored_as_flow_parameters() -> None:
    from prefect.client.orchestration import get_client

    from recodec.flows.recompress import recompress

    secret = f"do-not-store-{uuid.uuid4().hex}"
    options = {"key": "AKIATEST", "secret": secret, "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
               "config_kwargs": {"retries": {"max_attempts": 0}}}  # fail fast: nothing listens there
    state = recompress(job_config("s3://nowhere/src", "s3://nowhere/dst", storage_options=options),
                       return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(state.state_details.flow_run_id).parameters
    assert secret not in json.dumps(stored, default=str)
