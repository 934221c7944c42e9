"""Shared fixtures: a real moto S3 server on 127.0.0.1, local Ray, Prefect's test harness."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "archive"
SHARED_DATA = REPO.parent / "shared" / "data"

# botocore must never find real credentials or reach AWS from the tests.
# Metric kernels stay eager in tests (Ray workers inherit it): background compiles would cost
# CPU in every test process; tests/test_kernels.py compiles them on purpose.
os.environ.setdefault("RECODEC_COMPILE", "0")
# Packaged kernels that tests build go to a throw-away folder, never to the user's cache.
os.environ.setdefault("RECODEC_KERNEL_CACHE", tempfile.mkdtemp(prefix="recodec-test-kernels-"))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Two test workers on two cores: a temporary Prefect server can take longer than its 20 s default.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server in this process, bound to loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_options(s3_server: str) -> dict[str, Any]:
    """s3fs storage options pointing at the moto server."""
    return {
        "key": os.environ["AWS_ACCESS_KEY_ID"],
        "secret": os.environ["AWS_SECRET_ACCESS_KEY"],
        "client_kwargs": {"endpoint_url": s3_server},
        "skip_instance_cache": True,
    }


@pytest.fixture
def s3_bucket(s3_options: dict[str, Any]) -> str:
    """A fresh, empty bucket; yields its ``s3://`` URL."""
    import s3fs

    name = f"test-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(**s3_options)
    fs.mkdir(name)
    return f"s3://{name}"


def upload_tree(local: Path, url: str, options: dict[str, Any]) -> None:
    """Copy a local folder to an S3 URL, file by file."""
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.pipe_file(f"{url.removeprefix('s3://')}/{path.relative_to(local).as_posix()}", path.read_bytes())


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """Embedded local Ray for the whole session (the same code joins a cluster with an address)."""
    import ray

    if not ray.is_initialized():
        # PYTHONPATH lets actors import test-only codecs ("tests.faults:HangingCodec").
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 object_store_memory=300 * 1024 * 1024,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Prefect's test harness: flows run against a throwaway local API database."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An empty local source folder (tests fill it)."""
    path = tmp_path / "src"
    path.mkdir()
    return path


@pytest.fixture
def dst(tmp_path: Path) -> Path:
    """A local destination folder path (created by the pipeline)."""
    return tmp_path / "dst"


@pytest.fixture
def sample_archive(tmp_path: Path) -> Path:
    """A private copy of the bundled sample archive (tests must never touch the real one)."""
    dst = tmp_path / "archive"
    shutil.copytree(SAMPLES, dst)
    return dst


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest files first (recorded in tests/durations.json; new files by their ``slow`` tests), order
    kept otherwise: with one file per worker at a time, no worker ends the run alone on a long one."""
    from collections import Counter

    from tests.durations import load

    seconds = load()
    slow = Counter(item.path for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: (-seconds.get(item.path.relative_to(REPO).as_posix(), 0.0), -slow[item.path]))
