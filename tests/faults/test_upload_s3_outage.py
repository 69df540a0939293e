"""Fault suite, uploads: the Ceph RADOS Gateway is stopped (``scripts/s3-server stop-rgw``) in the
middle of an upload and at its completion, then started again. Nothing may be lost and nothing
already received may be sent again.

Real pieces only: the app on a real HTTP socket, a Ceph RGW of its own (these tests stop the
gateway, so never the shared one: FAULT_S3_SERVER_DIR / _PORT / _MON_PORT, default
/tmp/hub-s3-uploadfault on port 7481), and real tus clients (the product's upload client and
plain tuspy). A WSGI wrapper in front of the app counts the bytes clients actually sent and holds
one request back until the gateway is down, so the fault lands exactly where each test says.

Each test prints one FAULT-TABLE line (and appends it to test-artifacts/faults-upload.jsonl):
fault, what the user saw, time to recover, data lost.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus, Upload, UploadState, User
from tests.conftest import require

# The storing state and quota rules run on PostgreSQL in tests/ingest/test_upload_outage_and_quota.py;
# this real-gateway suite (minutes of wall time) runs once.
pytestmark = [pytest.mark.slow, pytest.mark.single_pass]

REPO = Path(__file__).resolve().parents[2]
S3_ENV = {
    "S3_SERVER_DIR": os.environ.get("FAULT_S3_SERVER_DIR", "/tmp/hub-s3-uploadfault"),
    "S3_SERVER_PORT": os.environ.get("FAULT_S3_SERVER_PORT", "7481"),
    "S3_SERVER_MON_PORT": os.environ.get("FAULT_S3_SERVER_MON_PORT", "16790"),
    "S3_SERVER_MEM_BYTES": os.environ.get("FAULT_S3_SERVER_MEM_BYTES", str(2 << 30)),
}


def s3_ctl(*args: str) -> subprocess.CompletedProcess[str]:
    """scripts/s3-server on this suite's private cluster (never the shared gateway)."""
    return subprocess.run([str(REPO / "scripts" / "s3-server"), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **S3_ENV})


@pytest.fixture(scope="module")
def private_s3() -> str:
    started = s3_ctl("start")
    require(started.returncode == 0, f"private Ceph RGW did not start: {started.stderr[-1500:]}")
    url = next((line.split("=", 1)[1] for line in s3_ctl("env").stdout.splitlines()
                if line.startswith("STORAGE_URL=")), None)
    require(url is not None and f":{S3_ENV['S3_SERVER_PORT']}/" in url, "s3-server env gave no STORAGE_URL")
    yield url
    s3_ctl("start-rgw")  # leave the gateway running whatever happened


@pytest.fixture
def settings(settings, private_s3):
    """The standard test settings on a fresh bucket of the private gateway, short Retry-After."""
    bucket_url = urlsplit(private_s3)._replace(path=f"/fault-{uuid.uuid4().hex[:12]}").geturl()
    return dataclasses.replace(settings, storage_url=bucket_url, upload_storage_retry_after=1)


class Gate:
    """WSGI wrapper: counts tus body bytes that reached the server, records every tus answer,
    and holds the first request matching ``hold`` until :meth:`release` (the gateway is down)."""

    def __init__(self, app) -> None:
        self.app = app
        self.sent = 0
        self.preview_sent = 0
        self.answers: list[tuple[str, int, dict]] = []
        self.hold = None
        self.held = threading.Event()
        self._go = threading.Event()
        self._lock = threading.Lock()

    def release(self) -> None:
        self._go.set()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/api/v1/uploads"):
            return self.app(environ, start_response)
        method = environ["REQUEST_METHOD"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if method == "POST" and environ.get("PATH_INFO", "").endswith("/preview"):
            with self._lock:  # the coarse preview the product client sends first: not the original's bytes
                self.preview_sent += length
        elif method in ("PATCH", "POST"):
            with self._lock:
                self.sent += length
            if self.hold is not None and not self.held.is_set() and self.hold(environ, length):
                self.held.set()
                assert self._go.wait(60), "the test never released the held request"

        def recording_start(status, headers, exc_info=None):
            self.answers.append((method, int(status.split()[0]), {k.lower(): v for k, v in headers}))
            return start_response(status, headers, exc_info)
        return self.app(environ, recording_start)

    def not_now(self) -> list[tuple[str, int, dict]]:
        return [a for a in self.answers if a[1] in (423, 503)]


@pytest.fixture
def gate(app):
    g = Gate(app.wsgi_app)
    app.wsgi_app = g
    return g


@pytest.fixture
def slide_file(tmp_path) -> Path:
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path / "fault-he.svs", 3000, 2200, mpp=0.25, tissue_fraction=0.45, seed=11,
                                 jpeg_quality=95)


@pytest.fixture
def demo_case_id(world) -> int:
    from pathology_hub.models import Case
    return world.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))


@pytest.fixture
def token(world) -> str:
    from pathology_hub.domain import accounts
    tech = world.scalar(select(User).where(User.username == "tech"))
    value = accounts.create_api_token(world, tech, "scanner")
    world.commit()
    return value


def _final_checks(app, world, path: Path, demo_case_id: int) -> dict:
    """Nothing lost: the stored original is byte-identical, a ready slide, quota right, no leftovers."""
    from pathology_hub import runtime
    from pathology_hub.domain.slides import institution_usage
    world.expire_all()
    [row] = world.scalars(select(Upload)).all()
    assert row.state is UploadState.COMPLETE and row.slide_id, row.state
    slide = world.get(Slide, row.slide_id)
    assert slide.status is SlideStatus.READY, (slide.status, slide.reject_message)
    digest = hashlib.sha256()
    for chunk in runtime.store().open_stream(slide.original.storage_key):
        digest.update(chunk)
    source = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.hexdigest() == source == slide.original.sha256
    assert institution_usage(world, row.institution_id) == path.stat().st_size  # counted once
    staging = Path(app.config["SETTINGS"].instance_path) / "uploads"
    assert not list(staging.glob("*.bin")), "a staged file leaked"
    return {"sha256_equal": True, "slide": "ready"}


def _record(row: dict) -> None:
    line = json.dumps(row, ensure_ascii=False)
    print("FAULT-TABLE", line)
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    with open(out / "faults-upload.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_gateway_stopped_mid_upload_product_client(app, world, live_server, gate, slide_file, token,
                                                   demo_case_id, tmp_path):
    """(a) Gateway stops at ~50 %: receiving goes on, the last chunk gets 503 + Retry-After, the
    client waits as told and finishes with HEAD once the gateway is back; every byte sent once."""
    from pathology_hub.upload_client import HubUploader
    size = slide_file.stat().st_size
    chunk = 256 * 1024
    gate.hold = lambda environ, n: environ["REQUEST_METHOD"] == "PATCH" and \
        int(environ.get("HTTP_UPLOAD_OFFSET", 0)) >= size // 2
    uploader = HubUploader(live_server, token, tmp_path / "state.json", chunk_size=chunk, retry_delay=1)
    result: dict = {}

    def run():
        try:
            result["url"] = uploader.send(slide_file, {"filename": slide_file.name, "case_id": str(demo_case_id)})
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc
    client = threading.Thread(target=run)
    client.start()
    assert gate.held.wait(60)
    stopped = time.monotonic()
    assert s3_ctl("stop-rgw").returncode == 0
    gate.release()
    _wait_for(lambda: len(gate.not_now()) >= 3 or "error" in result, 60, "503/423 answers while the gateway is down")
    first = gate.not_now()[0]
    assert first[0] == "PATCH" and first[1] == 503 and first[2]["retry-after"] == "1"
    assert first[2]["upload-offset"] == str(size)  # all received: nothing to resend
    assert all(a[2].get("retry-after") for a in gate.not_now())
    world.expire_all()
    assert world.scalars(select(Upload)).one().state is UploadState.STORING
    assert s3_ctl("start-rgw").returncode == 0
    back = time.monotonic()
    client.join(120)
    recovered = time.monotonic() - back
    assert "error" not in result, result.get("error")
    assert gate.sent == size, f"{gate.sent - size} bytes were sent twice"
    checks = _final_checks(app, world, slide_file, demo_case_id)
    _record({"fault": "RGW stopped mid-upload (50 %), product client", "user_saw":
             f"PATCH 503 storage_unavailable + Retry-After 1, then HEAD 423 x{len(gate.not_now()) - 1}; "
             f"client waited and finished by itself", "time_to_recover_s": round(recovered, 2),
             "outage_s": round(back - stopped, 2), "bytes_sent": gate.sent, "file_bytes": size,
             "data_lost": "none", **checks})


def test_gateway_stopped_at_completion_tuspy(app, world, live_server, gate, slide_file, token, demo_case_id):
    """(b) Gateway stops just before the last PATCH; plain tuspy (retries, no Retry-After logic)
    still ends with a ready slide without resending anything."""
    from tusclient import client as tus_client
    size = slide_file.stat().st_size
    chunk = 512 * 1024
    gate.hold = lambda environ, n: environ["REQUEST_METHOD"] == "PATCH" and \
        int(environ.get("HTTP_UPLOAD_OFFSET", 0)) + n == size
    client = tus_client.TusClient(f"{live_server}/api/v1/uploads/", headers={"Authorization": f"Bearer {token}"})
    uploader = client.uploader(str(slide_file), chunk_size=chunk, retries=60, retry_delay=1,
                               metadata={"filename": slide_file.name, "case_id": str(demo_case_id)})
    result: dict = {}

    def run():
        try:
            uploader.upload()
        except Exception as exc:  # noqa: BLE001
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    assert gate.held.wait(60)
    assert s3_ctl("stop-rgw").returncode == 0
    gate.release()
    _wait_for(lambda: len(gate.not_now()) >= 2 or "error" in result, 60, "answers while the gateway is down")
    first = gate.not_now()[0]
    assert first[:2] == ("PATCH", 503) and first[2]["retry-after"] and first[2]["upload-offset"] == str(size)
    assert gate.not_now()[1][:2] == ("HEAD", 423) and "upload-offset" not in gate.not_now()[1][2]
    staging = Path(app.config["SETTINGS"].instance_path) / "uploads"
    assert [p.stat().st_size for p in staging.glob("*.bin")] == [size]  # kept while storage is down
    assert s3_ctl("start-rgw").returncode == 0
    back = time.monotonic()
    thread.join(120)
    recovered = time.monotonic() - back
    assert "error" not in result, result.get("error")
    assert gate.sent == size
    checks = _final_checks(app, world, slide_file, demo_case_id)
    _record({"fault": "RGW stopped at upload completion, tuspy", "user_saw":
             f"PATCH 503 storage_unavailable + Retry-After, HEAD 423 x{len(gate.not_now()) - 1}; "
             f"tuspy retried and finished", "time_to_recover_s": round(recovered, 2), "bytes_sent": gate.sent,
             "file_bytes": size, "data_lost": "none", **checks})


def test_gateway_stopped_at_completion_client_gone_worker_finishes(app, world, live_server, gate, slide_file,
                                                                   token, demo_case_id):
    """(b') The client sends the last bytes, gets 503 and goes away for good; after the gateway
    returns the worker's periodic hand-over (store_pending_uploads_task) makes the slide."""
    import requests

    from pathology_hub.upload_server import retry_pending_uploads
    from tests.fixtures.uploads import tus_metadata
    data = slide_file.read_bytes()
    headers = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
    assert s3_ctl("stop-rgw").returncode == 0
    created = requests.post(f"{live_server}/api/v1/uploads/", data=data, timeout=60, headers={
        **headers, "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream",
        "Upload-Metadata": tus_metadata(filename=slide_file.name, case_id=str(demo_case_id)),
        "Accept-Language": "zh-CN"})
    assert created.status_code == 503 and created.headers["Retry-After"] and created.headers["Location"]
    assert created.json()["error"]["code"] == "storage_unavailable" and "存储" in created.json()["error"]["message"]
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    status = requests.get(f"{live_server}/api/v1/upload-status/{upload_id}", headers=headers, timeout=10).json()
    assert status["status"] == "storing" and status["waiting_for"] == "storage"
    assert retry_pending_uploads() == []  # worker tick during the outage: nothing lost
    assert s3_ctl("start-rgw").returncode == 0
    back = time.monotonic()
    assert retry_pending_uploads() == [upload_id]  # next worker tick
    recovered = time.monotonic() - back
    assert gate.sent == len(data)
    checks = _final_checks(app, world, slide_file, demo_case_id)
    assert requests.get(f"{live_server}/api/v1/upload-status/{upload_id}", headers=headers,
                        timeout=10).json()["status"] == "ready"
    _record({"fault": "RGW stopped at completion, client gone", "user_saw":
             "503 storage_unavailable + Retry-After (zh message); status 'storing, waiting for storage'",
             "time_to_recover_s": f"{recovered:.2f} after the worker tick (ticks every 60 s)",
             "bytes_sent": gate.sent, "file_bytes": len(data), "data_lost": "none", **checks})


@pytest.mark.browser
@pytest.mark.parametrize("locale,expected", [("zh_CN", "存储服务暂时不可用"), ("en", "storage is unavailable")])
def test_browser_upload_waits_out_the_outage_and_finishes(app, world, live_server, gate, slide_file, browser,
                                                          demo_case_id, locale, expected):
    """(a, browser) tus-js-client in Chromium: the uploader shows the outage in the user's language,
    retries by itself (HEAD first, so nothing is resent) and ends with a ready slide."""
    from tests.browser_helpers import login, wait_until
    tech = world.scalar(select(User).where(User.username == "tech"))
    tech.locale = locale
    world.commit()
    settings = app.config["SETTINGS"]
    settings.upload_chunk_bytes = 256 * 1024
    settings.upload_storage_retry_after = 3  # long enough to look at the message
    size = slide_file.stat().st_size
    gate.hold = lambda environ, n: environ["REQUEST_METHOD"] == "PATCH" and \
        int(environ.get("HTTP_UPLOAD_OFFSET", 0)) + n == size
    shots = Path("/work/notes/shots/uploadfault")
    shots.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(locale=locale.replace("_", "-"), viewport={"width": 1200, "height": 900})
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}")
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(slide_file)])
    assert gate.held.wait(60)
    assert s3_ctl("stop-rgw").returncode == 0
    gate.release()
    wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'waiting'", 30)
    text = page.evaluate("pathologyUploader.uploads[0].statusText")
    assert expected in text, text
    page.locator("#upload-app").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"upload-storage-down-{locale}.png"))
    wait_until(page, "pathologyUploader.uploads[0].waits >= 2", 30)  # it keeps retrying by itself
    assert s3_ctl("start-rgw").returncode == 0
    wait_until(page, "pathologyUploader.uploads[0].state === 'done'", 120)
    page.screenshot(path=str(shots / f"upload-storage-recovered-{locale}.png"))
    assert gate.sent == size, f"{gate.sent - size} bytes were sent twice"
    _final_checks(app, world, slide_file, demo_case_id)
    ctx.close()
