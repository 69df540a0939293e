"""Issue 16, findings 3 and 5 through the real app: an upload finishing while object storage is
down is kept and completes later (HEAD or the worker's retry), and upload reservations cannot be
used to lock a centre out of its quota.

The store here is the app's real local store behind a switch that makes every call raise
StorageUnavailable, as the S3 backend does when the gateway is down; tests/faults/ runs the same
story against a real Ceph RGW that is actually stopped.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus, Upload, UploadState, User
from storage.errors import StorageUnavailable
from tests.fixtures.uploads import tus_metadata

V = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


class SwitchableStore:
    """The real store, or "gateway down" for every call while ``down`` is set."""

    def __init__(self, real) -> None:
        self.real = real
        self.down = False

    def __getattr__(self, name):
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.down:
                raise StorageUnavailable(f"{name}: backend unavailable after 4 attempt(s): connection refused")
            return attr(*args, **kwargs)
        return call


@pytest.fixture
def switch(app, monkeypatch) -> SwitchableStore:
    from pathology_hub import runtime
    store = SwitchableStore(runtime.store())
    monkeypatch.setattr(runtime, "store", lambda: store)
    return store


@pytest.fixture
def fresh_server(app):
    from pathology_hub import upload_server
    upload_server._server = None  # built again from the settings the test changed
    yield
    upload_server._server = None


def _create(client, case_id: int, size: int, *, sha256: str | None = None, filename: str = "s.svs", **headers):
    meta = {"filename": filename, "case_id": str(case_id)}
    if sha256:
        meta["sha256"] = sha256
    return client.post("/api/v1/uploads/", headers={**V, "Upload-Length": str(size),
                                                    "Upload-Metadata": tus_metadata(**meta), **headers})


def _patch(client, url: str, offset: int, data: bytes, **headers):
    return client.patch(url, data=data, headers={**V, **OCTET, "Upload-Offset": str(offset), **headers})


def _row(db, upload_id: str | None = None) -> Upload:
    db.expire_all()
    rows = db.scalars(select(Upload)).all()
    return rows[-1] if upload_id is None else next(r for r in rows if r.id == upload_id)


def _staged(app, url: str):
    from pathology_hub.upload_server import server
    return server().staging.data_path(url.rsplit("/", 1)[1])


def test_storage_down_at_completion_keeps_the_upload_and_head_finishes_it(
        app, client_for, db, world, synthetic_slide, demo_case_id, switch):
    from pathology_hub.domain.slides import institution_usage
    tech = client_for("tech")
    data = synthetic_slide.read_bytes()
    half = len(data) // 2
    url = _create(tech, demo_case_id, len(data), sha256=hashlib.sha256(data).hexdigest()).headers["Location"]
    assert _patch(tech, url, 0, data[:half]).status_code == 204

    switch.down = True  # the gateway stops while the upload is half way: receiving is not affected
    r = _patch(tech, url, half, data[half:], **{"Accept-Language": "en"})
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "10" and r.headers["Upload-Offset"] == str(len(data))
    assert r.json["error"]["code"] == "storage_unavailable"
    assert "kept safely" in r.json["error"]["message"] and r.json["error"]["details"]["retry_after"] == 10
    assert _staged(app, url).read_bytes() == data
    row = _row(db)
    assert row.state is UploadState.STORING
    institution = row.institution_id
    assert institution_usage(db, institution) == len(data)  # still reserved: the bytes are here
    status = tech.get(f"/api/v1/upload-status/{url.rsplit('/', 1)[1]}").json
    assert status["status"] == "storing" and status["waiting_for"] == "storage"
    assert status["received_bytes"] == len(data)
    listing = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json
    assert [u["state"] for u in listing["uploads"]] == ["storing"]

    h = tech.http.head(url, headers=V)
    assert h.status_code == 423 and h.headers["Retry-After"] and "Upload-Offset" not in h.headers
    again = _patch(tech, url, len(data), b"", **{"Accept-Language": "zh-CN"})
    assert again.status_code == 503 and "存储" in again.json["error"]["message"]

    switch.down = False
    h = tech.http.head(url, headers=V)
    assert h.status_code == 200 and h.headers["Upload-Offset"] == str(len(data))
    row = _row(db)
    assert row.state is UploadState.COMPLETE and row.slide_id and row.error_code is None
    slide = db.get(Slide, row.slide_id)
    assert slide.original.sha256 == hashlib.sha256(data).hexdigest()
    assert slide.status is SlideStatus.READY  # queue runs immediately in tests
    assert not _staged(app, url).exists()
    assert institution_usage(db, institution) == len(data)  # now counted once, as the stored original
    assert tech.get(f"/api/v1/upload-status/{url.rsplit('/', 1)[1]}").json["status"] == "ready"


def test_worker_finishes_a_stored_upload_when_the_client_went_away(
        app, client_for, db, world, synthetic_slide, demo_case_id, switch):
    from pathology_hub.upload_server import retry_pending_uploads
    tech = client_for("tech")
    data = synthetic_slide.read_bytes()
    url = _create(tech, demo_case_id, len(data)).headers["Location"]
    switch.down = True
    assert _patch(tech, url, 0, data).status_code == 503
    assert retry_pending_uploads() == []  # still down: nothing lost, nothing done
    assert _row(db).state is UploadState.STORING and _staged(app, url).exists()
    switch.down = False
    assert retry_pending_uploads() == [url.rsplit("/", 1)[1]]
    row = _row(db)
    assert row.state is UploadState.COMPLETE and db.get(Slide, row.slide_id).status is SlideStatus.READY
    assert not _staged(app, url).exists()
    assert tech.http.head(url, headers=V).headers["Upload-Offset"] == str(len(data))


def test_a_verified_copy_left_by_an_interrupted_hand_over_is_used(
        app, client_for, db, world, synthetic_slide, demo_case_id, monkeypatch):
    """The local store took the staged file (rename) and then the database failed: the retry
    must find the stored object instead of the staged file that is gone."""
    from sqlalchemy.exc import OperationalError

    from pathology_hub.domain.slides import uploads as slide_service  # complete_upload calls _next_label
    tech = client_for("tech")
    data = synthetic_slide.read_bytes()
    url = _create(tech, demo_case_id, len(data)).headers["Location"]
    real_next_label = slide_service._next_label
    calls = []

    def db_down_once(session, case_id):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        return real_next_label(session, case_id)
    monkeypatch.setattr(slide_service, "_next_label", db_down_once)
    r = _patch(tech, url, 0, data)
    assert r.status_code == 503 and r.json["error"]["code"] == "database_unavailable"
    assert tech.http.head(url, headers=V).status_code == 200
    row = _row(db)
    assert row.state is UploadState.COMPLETE
    assert db.get(Slide, row.slide_id).original.sha256 == hashlib.sha256(data).hexdigest()


def test_deleted_uploads_release_the_quota_at_once(app, client_for, db, world, demo_case_id, fresh_server):
    settings = app.config["SETTINGS"]
    settings.institution_quota_bytes = 100 * 2**30
    tech = client_for("tech")
    urls = [_create(tech, demo_case_id, 20 * 2**30, filename=f"big{i}.svs").headers["Location"]
            for i in range(5)]
    refused = _create(tech, demo_case_id, 1 << 20, **{"Accept-Language": "en"})
    assert refused.status_code == 413 and refused.json["error"]["code"] == "quota_exceeded"
    for url in urls:
        assert tech.delete(url, headers=V).status_code == 204
    db.expire_all()
    assert {r.state for r in db.scalars(select(Upload))} == {UploadState.CANCELLED}
    assert _create(tech, demo_case_id, 1 << 20).status_code == 201


def test_expired_uploads_stop_counting_before_the_sweeper_runs(app, client_for, db, world, demo_case_id):
    import datetime as dt
    settings = app.config["SETTINGS"]
    settings.institution_quota_bytes = 30 * 2**30
    tech = client_for("tech")
    assert _create(tech, demo_case_id, 20 * 2**30).status_code == 201
    assert _create(tech, demo_case_id, 20 * 2**30).status_code == 413
    row = _row(db)
    row.expires_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    db.commit()
    assert _create(tech, demo_case_id, 20 * 2**30).status_code == 201


def test_open_uploads_per_user_are_capped_tokens_included(app, client_for, db, world, demo_case_id, fresh_server):
    from pathology_hub.domain import accounts
    app.config["SETTINGS"].max_open_uploads_per_user = 3
    tech_user = db.scalar(select(User).where(User.username == "tech"))
    token = accounts.create_api_token(db, tech_user, "scanner")
    db.commit()
    tech = client_for("tech")
    urls = [_create(tech, demo_case_id, 1000).headers["Location"] for _ in range(2)]
    scanner = app.test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert _create(scanner, demo_case_id, 1000, **bearer).status_code == 201
    refused = _create(scanner, demo_case_id, 1000, **bearer, **{"Accept-Language": "en"})
    assert refused.status_code == 429 and refused.json["error"]["code"] == "too_many_open_uploads"
    assert refused.json["error"]["details"] == {"open": 3, "limit": 3}
    assert "3 unfinished uploads" in refused.json["error"]["message"]
    tech_user.locale = "zh_CN"
    db.commit()
    zh = _create(tech, demo_case_id, 1000)
    assert zh.status_code == 429 and "未完成" in zh.json["error"]["message"]
    assert tech.delete(urls[0], headers=V).status_code == 204  # frees a place at once
    assert _create(tech, demo_case_id, 1000).status_code == 201
    # finished uploads do not count
    assert tech.delete(urls[1], headers=V).status_code == 204
    data = b"x" * 1000
    done = _create(tech, demo_case_id, len(data)).headers["Location"]
    assert _patch(tech, done, 0, data).status_code in (204, 422)  # not a slide; rejected later is fine
    assert _create(tech, demo_case_id, 1000).status_code == 201
