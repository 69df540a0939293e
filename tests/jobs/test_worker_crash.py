"""A worker killed with SIGKILL in the middle of a pyramid: its tiling processes die with it
(none is left orphaned), the reaper re-queues the job (its lease expired), a new worker
resumes from the packs already stored, and the finished pyramid is identical to an
uninterrupted build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from pathology_hub.models import Job, JobState, Slide, SlideStatus
from tests.conftest import ROOT

# Real worker processes and a 28k x 20k slide: once (SQLite pass). The lease and reaper rules it relies on
# run on both databases in tests/jobs/test_reaper.py.
pytestmark = [pytest.mark.slow, pytest.mark.single_pass]


def _env(settings) -> dict:
    return {**os.environ, "DATABASE_URL": settings.database_url, "STORAGE_URL": settings.storage_url,
            "QUEUE_URL": settings.queue_url, "INSTANCE_PATH": str(settings.instance_path),
            "SECRET_KEY": settings.secret_key, "JOB_LEASE_SECONDS": "2", "FLASK_APP": "wsgi", "LOG_LEVEL": "WARNING"}


def _worker(settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flask", "worker", "--workers", "1"], cwd=ROOT,
                            env=_env(settings), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _call(settings, code: str) -> None:
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(settings), check=True, timeout=60)


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (children of all its threads, recursively), from /proc."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{parent}/task/{tid}/children") as fh:
                    kids = {int(x) for x in fh.read().split()}
            except FileNotFoundError:
                continue
            todo.extend(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan reaped late by init is dead already)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _job(db, job_id: int) -> Job:
    db.expire_all()
    return db.get(Job, job_id)


def test_sigkilled_worker_job_is_reaped_and_resumed(app, world, settings, tmp_path, monkeypatch):
    from pathology_hub import runtime
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    from pathology_hub.domain import slides as slide_service
    from pathology_hub.models import Case, User
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.tiling import PyramidReader, build_pyramid

    db = world
    # Big enough (~12k tiles, ~5 s of block rendering on 2 cores) that the 1 s heartbeats
    # show the build part-way: a 14k x 10k slide was finished between two heartbeats.
    path = write_synthetic_slide(tmp_path / "big.svs", 28000, 20000, mpp=0.25, seed=13)
    case = db.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = db.scalar(select(User).where(User.username == "tech"))
    monkeypatch.setattr(jobs, "enqueue", lambda job_id, delay=None: None)  # queue by hand below
    slide = slide_service.add_local_file(db, runtime.store(), case, tech, path)
    ingest = db.scalar(select(Job).where(Job.kind == "ingest"))
    assert jobs.run(lambda: SessionLocal.session_factory(), ingest.id) == "done"
    tile_job = db.scalar(select(Job).where(Job.kind == "tile"))
    monkeypatch.undo()

    first = _worker(settings)
    try:
        _call(settings, f"from pathology_hub.tasks import run_job_task; run_job_task({tile_job.id})")
        deadline = time.monotonic() + 120
        while True:
            job = _job(db, tile_job.id)
            progress = json.loads(job.progress or "{}")
            if progress.get("phase") == "levels" and progress.get("tiles_done", 0) >= 0.2 * progress["tiles_total"]:
                assert progress["tiles_done"] < progress["tiles_total"], "the build finished before it could be interrupted"
                break
            assert job.state is not JobState.DONE, "the build finished before it could be interrupted"
            assert job.state is not JobState.FAILED, job.error
            assert time.monotonic() < deadline, f"no progress: {job.state} {progress}"
            time.sleep(0.05)
        children = _descendants(first.pid)
        # The forkserver and at least one tiling process: the check below can fail.
        assert len(children) >= 2, children
        os.kill(first.pid, signal.SIGKILL)  # the worker process only, as the OOM killer or an operator would
        first.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = {p for p in children if _alive(p)}
        assert not orphans, f"tiling processes outlived their SIGKILLed worker: {orphans}"
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # whatever is left of its process group
        except ProcessLookupError:
            pass
        first.wait(timeout=10)
    interrupted_at = json.loads(_job(db, tile_job.id).progress)["tiles_done"]
    assert _job(db, tile_job.id).state is JobState.RUNNING  # nobody told the database

    time.sleep(2.5)  # the lease (2 s) expires without heartbeats
    second = _worker(settings)
    try:
        _call(settings, "from pathology_hub.tasks import reap_jobs_task; print(reap_jobs_task.call_local())")
        deadline = time.monotonic() + 180
        while _job(db, tile_job.id).state is not JobState.DONE:
            assert _job(db, tile_job.id).state is not JobState.FAILED, _job(db, tile_job.id).error
            assert time.monotonic() < deadline, "the re-queued job did not finish"
            time.sleep(0.2)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)

    job = _job(db, tile_job.id)
    assert job.attempts == 2
    db.expire_all()
    slide = db.get(Slide, slide.id)
    assert slide.status is SlideStatus.READY
    assert 0 < interrupted_at < json.loads(job.progress)["tiles_total"]

    # Same bytes as a build that was never interrupted.
    store = runtime.store()
    build_pyramid(str(path), store, "reference/uninterrupted")
    resumed = PyramidReader(store, slide_service.pyramid_prefix(slide))
    reference = PyramidReader(store, "reference/uninterrupted")
    geometry = reference.geometry
    checked = 0
    for level in range(geometry.level_count):
        cols, rows = geometry.level_tiles(level)
        for col in range(cols):
            for row in range(rows):
                assert resumed.tile(level, col, row) == reference.tile(level, col, row), (level, col, row)
                checked += 1
    assert checked > 1000
