"""Fault suite: the S3 gateway (a real Ceph RGW) stops while a slide is being tiled.

The gateway is stopped (``scripts/s3-server stop-rgw``) part-way through a build run by a real
``flask worker`` process, for 60 s (normal suite) or 5 minutes (``long_outage``, run by
scripts/test in the background), then started again. Asserted: while it is down the slide is
still *tiling* and says it is waiting for storage, and no attempt is consumed; after it returns
the slide becomes *ready* by itself, with every tile of the pyramid readable and equal to an
undisturbed build of the same slide. Nothing is lost.

These tests stop the gateway, so they use a cluster of their own (never the shared one of
tests/storage): TILING_FAULT_S3_DIR / _PORT / _MON_PORT, by default /tmp/hub-s3-tilingfault on
port 7482. Figures (time to recover, what the user saw) go to test-artifacts/faults-tiling-*.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from pathology_hub.models import Job, JobState, Slide, SlideStatus
from tests.conftest import ROOT, require

pytestmark = pytest.mark.slow

S3_SERVER = ROOT / "scripts" / "s3-server"
CLUSTER_ENV = {"S3_SERVER_DIR": os.environ.get("TILING_FAULT_S3_DIR", "/tmp/hub-s3-tilingfault"),
               "S3_SERVER_PORT": os.environ.get("TILING_FAULT_S3_PORT", "7482"),
               "S3_SERVER_MON_PORT": os.environ.get("TILING_FAULT_S3_MON_PORT", "16791")}
MAX_DELAY = 5  # STORAGE_OUTAGE_MAX_DELAY_SECONDS of the worker: the job notices the gateway within 5 s


def s3_server(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(S3_SERVER), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **CLUSTER_ENV})


@pytest.fixture(scope="module")
def fault_s3_url() -> str:
    """STORAGE_URL of this module's own gateway (started once; left running like the shared one)."""
    started = s3_server("start")
    require(started.returncode == 0, f"fault S3 cluster did not start: {started.stderr[-2000:]}")
    url = next((line.split("=", 1)[1] for line in s3_server("env").stdout.splitlines()
                if line.startswith("STORAGE_URL=")), None)
    assert url, "scripts/s3-server env printed no STORAGE_URL"
    # A freshly built cluster creates its pools on the first writes, which can take longer than
    # a request's timeout: write once before the tests time anything.
    from storage import open_store
    from storage.errors import StorageUnavailable
    store = open_store(urlsplit(url)._replace(path="/warm-up").geturl())
    deadline = time.monotonic() + 180
    while True:
        try:
            store.ping()
            store.put_bytes("warm-up", b"x" * 4096)
            break
        except StorageUnavailable:
            assert time.monotonic() < deadline, "the fault cluster does not accept writes"
            time.sleep(1)
    return url


@pytest.fixture
def settings(settings, fault_s3_url):
    """The usual test settings, on a fresh bucket of the fault cluster."""
    url = urlsplit(fault_s3_url)._replace(path=f"/fault-{uuid.uuid4().hex[:12]}").geturl()
    return dataclasses.replace(settings, storage_url=url)


def _env(settings) -> dict:
    return {**os.environ, "DATABASE_URL": settings.database_url, "STORAGE_URL": settings.storage_url,
            "QUEUE_URL": settings.queue_url, "INSTANCE_PATH": str(settings.instance_path),
            "SECRET_KEY": settings.secret_key, "FLASK_APP": "wsgi", "LOG_LEVEL": "WARNING",
            "STORAGE_OUTAGE_MAX_DELAY_SECONDS": str(MAX_DELAY)}


def _job(db, job_id: int) -> Job:
    db.expire_all()
    return db.get(Job, job_id)


def run_outage(*, outage_seconds: float, app, world, settings, client_for, tmp_path, monkeypatch,
               artifacts: Path, name: str) -> dict:
    from pathology_hub import runtime
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    from pathology_hub.domain import slides as slide_service
    from pathology_hub.models import Case, User
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.tiling import PyramidReader, build_pyramid

    db = world
    # ~2,400 level-0 tiles: block rendering lasts a few seconds on 2 cores, long enough to stop
    # the gateway part-way (checked below), short enough to keep the suite's CPU bill small.
    path = write_synthetic_slide(tmp_path / "outage.svs", 14000, 11000, mpp=0.25, seed=21)
    case = db.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = db.scalar(select(User).where(User.username == "tech"))
    monkeypatch.setattr(jobs, "enqueue", lambda job_id, delay=None: None)  # the worker gets the tile job
    slide = slide_service.add_local_file(db, runtime.store(), case, tech, path)
    ingest = db.scalar(select(Job).where(Job.kind == "ingest", Job.slide_id == slide.id))
    assert jobs.run(lambda: SessionLocal.session_factory(), ingest.id) == "done"
    tile_job = db.scalar(select(Job).where(Job.kind == "tile", Job.slide_id == slide.id))
    monkeypatch.undo()
    api = client_for("tech")

    worker = subprocess.Popen([sys.executable, "-m", "flask", "worker", "--workers", "1"], cwd=ROOT,
                              env=_env(settings), start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"))
    figures: dict = {"fault": f"S3 gateway stopped for {outage_seconds:.0f} s during tiling"}
    try:
        subprocess.run([sys.executable, "-c", f"from pathology_hub.tasks import run_job_task; "
                        f"run_job_task({tile_job.id})"], cwd=ROOT, env=_env(settings), check=True, timeout=60)
        deadline = time.monotonic() + 120
        while True:  # the preview is stored and level-0 blocks are being rendered
            job = _job(db, tile_job.id)
            progress = json.loads(job.progress or "{}")
            if progress.get("phase") in ("preview", "levels"):
                break
            assert job.state not in (JobState.DONE, JobState.FAILED), (job.state, job.error)
            assert time.monotonic() < deadline, f"tiling did not start: {job.state} {progress}"
            time.sleep(0.02)
        stopped = s3_server("stop-rgw")
        assert stopped.returncode == 0, stopped.stderr
        down_at = time.monotonic()
        job = _job(db, tile_job.id)
        assert job.state is not JobState.DONE, "the build finished before the gateway stopped"
        figures["tiles_done_when_stopped"] = json.loads(job.progress or "{}").get("tiles_done")

        # While it is down: still tiling, truthfully waiting for storage, no attempt used up.
        samples, waiting_seen, first_wait = 0, 0, None
        while time.monotonic() - down_at < outage_seconds:
            job = _job(db, tile_job.id)
            assert job.state is not JobState.FAILED, job.error
            assert job.state is not JobState.DONE, "the pyramid was finished without storage"
            assert job.attempts <= 1, f"the outage consumed attempts: {job.attempts}"
            shown = api.get(f"/api/v1/slides/{slide.id}").json
            assert shown["status"] == "tiling", shown
            samples += 1
            if shown["waiting_for_storage"]:
                waiting_seen += 1
                if first_wait is None:
                    first_wait = time.monotonic() - down_at
                    page = api.get(f"/cases/{case.id}").get_data(as_text=True)
                    assert "waiting for storage" in page
                    figures["user_saw"] = shown["waiting_for_storage"]["message"]
            time.sleep(min(1.0, max(0.05, outage_seconds - (time.monotonic() - down_at))))
        # The run under way when the gateway stops fails once its uploads time out (read timeout 30 s).
        assert first_wait is not None and first_wait < 40, "the slide never said it waits for storage"
        # From then on it says so all the time, during retry runs too.
        assert waiting_seen >= samples - first_wait - 2, (waiting_seen, samples, first_wait)

        started = s3_server("start-rgw")
        assert started.returncode == 0, started.stderr
        up_at = time.monotonic()
        deadline = up_at + 180
        while _job(db, tile_job.id).state is not JobState.DONE:
            job = _job(db, tile_job.id)
            assert job.state is not JobState.FAILED, job.error
            assert time.monotonic() < deadline, f"tiling did not resume: {job.state} {job.error}"
            time.sleep(0.2)
        recovered = time.monotonic() - up_at
    finally:
        if s3_server("status").returncode != 0:
            s3_server("start-rgw")  # never leave the cluster without its gateway
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)

    job = _job(db, tile_job.id)
    assert job.attempts == 1, f"{job.attempts} attempts: the outage was counted against the job"
    assert job.storage_wait_since is None
    db.expire_all()
    slide = db.get(Slide, slide.id)
    assert slide.status is SlideStatus.READY and slide.reject_code is None

    # Nothing lost: the pyramid is byte-identical to an undisturbed build of the same file in the
    # same store (every object; the manifest up to its own key prefix), and its tiles are readable.
    store = runtime.store()
    ours_prefix, ref_prefix = slide_service.pyramid_prefix(slide), "reference/undisturbed"
    build_pyramid(str(path), store, ref_prefix)
    ours = {i.key[len(ours_prefix):] for i in store.list(ours_prefix + "/")}
    ref = {i.key[len(ref_prefix):] for i in store.list(ref_prefix + "/")}
    assert ours == ref and "/manifest.json" in ref and sum(n.endswith(".pack") for n in ref) > 10, (ours ^ ref)
    for obj in sorted(ref):
        a, b = store.get_bytes(ours_prefix + obj), store.get_bytes(ref_prefix + obj)
        if obj.endswith(".json"):
            a, b = a.replace(ours_prefix.encode(), b"<prefix>"), b.replace(ref_prefix.encode(), b"<prefix>")
        assert a == b, f"{obj} differs from the undisturbed build"
    resumed = PyramidReader(store, ours_prefix)
    geometry = resumed.geometry
    checked = 0
    for level in range(geometry.level_count):  # the corners and centre of every level decode
        cols, rows = geometry.level_tiles(level)
        for col, row in {(0, 0), (cols - 1, rows - 1), (cols // 2, rows // 2)}:
            assert resumed.tile(level, col, row)[:2] == b"\xff\xd8", (level, col, row)
            checked += 1
    figures.update({"time_to_recover_seconds": round(recovered, 1), "first_waiting_status_seconds":
                    round(first_wait, 1), "attempts": job.attempts, "objects_compared": len(ref), "tiles_decoded": checked,
                    "data_lost": "none"})
    (artifacts / f"faults-tiling-{name}.json").write_text(json.dumps(figures, indent=1, ensure_ascii=False))
    print(json.dumps(figures, ensure_ascii=False))
    return figures


@pytest.mark.single_pass  # ~2 min of wall time; the job logic on PostgreSQL is tested in tests/jobs
def test_gateway_stopped_60s_during_tiling(app, world, settings, client_for, tmp_path, monkeypatch, artifacts):
    run_outage(outage_seconds=60, app=app, world=world, settings=settings, client_for=client_for,
               tmp_path=tmp_path, monkeypatch=monkeypatch, artifacts=artifacts, name="60s")


@pytest.mark.long_outage
@pytest.mark.timeout(1500)
def test_gateway_stopped_5min_during_tiling(app, world, settings, client_for, tmp_path, monkeypatch, artifacts):
    run_outage(outage_seconds=300, app=app, world=world, settings=settings, client_for=client_for,
               tmp_path=tmp_path, monkeypatch=monkeypatch, artifacts=artifacts, name="5min")
