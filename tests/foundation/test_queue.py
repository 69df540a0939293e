"""Background jobs through Huey: SQLite queue by default, Redis for multi-machine set-ups.

Each test starts a real ``flask worker`` process and waits for it to run a task.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require


def _run_worker_roundtrip(queue_url: str, tmp_path) -> str:
    env = {**os.environ, "QUEUE_URL": queue_url, "INSTANCE_PATH": str(tmp_path / "inst"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "FLASK_APP": "wsgi"}
    code = ("import os, sys; sys.path.insert(0, os.getcwd()); from pathology_hub.queue import huey; "
            "huey.flush(); from pathology_hub.tasks import ping_task; r = ping_task('x42'); "
            "print(r.get(blocking=True, timeout=30))")
    worker = subprocess.Popen([sys.executable, "-m", "flask", "worker", "--workers", "1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def test_sqlite_queue_with_real_worker(tmp_path):
    assert _run_worker_roundtrip(f"sqlite:///{tmp_path / 'queue.db'}", tmp_path) == "pong:x42"


def test_redis_queue_with_real_worker(tmp_path):
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        started = subprocess.run([str(ROOT / "scripts" / "redis-server"), "start"], capture_output=True, text=True)
        url = started.stdout.strip() if started.returncode == 0 else None
    require(bool(url), "no Redis server (scripts/redis-server start failed)")
    assert _run_worker_roundtrip(url, tmp_path) == "pong:x42"


def test_queue_url_is_validated():
    from pathology_hub.queue import describe, make_huey
    with pytest.raises(RuntimeError, match="QUEUE_URL"):
        make_huey("amqp://x")
    assert describe("redis://:secret@host:6379/0") == "redis://host:6379/0"
