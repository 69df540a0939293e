"""Fixtures: a ``store`` for each backend, the S3 one on a real Ceph RADOS Gateway.

The gateway comes from ``scripts/s3-server`` (started once per session). When it
cannot be started the S3 half is skipped locally but fails under CI=true, so a
broken CI image can never turn the S3 contract into silent skips.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from storage.local import LocalStore

REPO = Path(__file__).resolve().parents[2]
S3_SERVER = REPO / "scripts" / "s3-server"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"S3 test server unavailable under CI: {reason}")
    pytest.skip(f"S3 test server unavailable: {reason}")


def s3_server(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(S3_SERVER), *args], capture_output=True, text=True, timeout=timeout)


_start_failure: list[str] = []  # remembered so a broken server costs one start attempt per session


def _start_server() -> str:
    try:
        started = s3_server("start")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/s3-server start failed: {exc}"
    if started.returncode != 0:
        return f"scripts/s3-server start exited {started.returncode}: {started.stderr[-2000:]}"
    return ""


@pytest.fixture(scope="session")
def s3_url() -> str:
    """``STORAGE_URL`` of the running gateway (bucket part to be replaced per test)."""
    if not _start_failure:
        _start_failure.append(_start_server())
    if _start_failure[0]:
        _unavailable(_start_failure[0])
    env = s3_server("env").stdout
    for line in env.splitlines():
        if line.startswith("STORAGE_URL="):
            return line.split("=", 1)[1]
    _unavailable(f"scripts/s3-server env printed no STORAGE_URL: {env!r}")
    raise AssertionError("unreachable")


@pytest.fixture
def s3_ctl() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``scripts/s3-server`` with the given sub-command (e.g. stop-rgw)."""
    return s3_server


@pytest.fixture
def repo_root() -> Path:
    return REPO


@pytest.fixture
def s3_store_factory(request: pytest.FixtureRequest) -> Iterator[Callable[[], Any]]:
    """Make S3Stores on fresh buckets (so every test starts from an empty namespace); drop them after."""
    made = []

    def make():
        from storage import open_store
        parts = urlsplit(request.getfixturevalue("s3_url"))
        store = open_store(parts._replace(path=f"/test-{uuid.uuid4().hex[:16]}").geturl())
        store.ping()  # creates the bucket
        made.append(store)
        return store
    yield make
    for store in made:
        store._delete_keys([i.key for i in store._list("", hidden=True)])
        store.client.remove_bucket(store.bucket)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(backend: str, tmp_path: Path, request: pytest.FixtureRequest):
    if backend == "local":
        return LocalStore(tmp_path / "root")
    return request.getfixturevalue("s3_store_factory")()
