"""All bytes received but the hand-over to storage impossible right now: nothing is lost.

The hook plays an object store that is down (it refuses with ``retry_after``) or broken
(it raises); the tus core must keep the verified bytes, answer 503/423 with Retry-After,
and finish through HEAD, an empty PATCH or the background retry without a byte resent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

import pytest

from pathology_hub.uploads import TusRequest, TusServer, UploadRefused
from pathology_hub.uploads.staging import COMPLETE, STORING
from tests.uploads.test_tus_core import V, create, error_code, head, patch, upload_id


class FlakyStore:
    """on_complete / on_end hooks with a switch: down means "storage unavailable, retry later"."""

    def __init__(self, app_hooks) -> None:
        self.app = app_hooks
        self.down = False
        self.broken = False
        self.calls = 0
        self.ended: list[tuple[str, str]] = []

    def on_complete(self, info) -> None:
        self.calls += 1
        assert info.data_path is not None and info.data_path.exists(), "hand-over without the staged bytes"
        if self.broken:
            raise RuntimeError("bug in the hook")
        if self.down:
            raise UploadRefused(503, "storage_unavailable", "Object storage is unavailable.", retry_after=7)
        self.app.on_complete(info)

    def on_end(self, info, reason: str) -> None:
        self.ended.append((info.id, reason))


@pytest.fixture
def flaky(app_hooks) -> FlakyStore:
    return FlakyStore(app_hooks)


@pytest.fixture
def tus(staging, app_hooks, clock, flaky) -> TusServer:
    return TusServer(staging, max_size=64 << 20, expiration=dt.timedelta(hours=24),
                     before_create=app_hooks.before_create, on_complete=flaky.on_complete, on_end=flaky.on_end,
                     authorize=lambda info, principal: info.owner.get("user") == principal,
                     lock_wait=0.2, clock=clock)


def _status(tus: TusServer, uid: str) -> dict:
    return json.loads(tus.handle(TusRequest("GET", uid, {}, None, None, "/up", "alice")).body)


def _half_uploaded(tus: TusServer) -> tuple[str, bytes]:
    data = os.urandom(200_000)
    uid = upload_id(create(tus, len(data), sha256=hashlib.sha256(data).hexdigest()))
    assert patch(tus, uid, 0, data[:100_000]).status == 204
    return uid, data


def test_storage_down_at_completion_keeps_bytes_and_head_finishes(tus, flaky, app_hooks, clock) -> None:
    uid, data = _half_uploaded(tus)
    flaky.down = True
    r = patch(tus, uid, 100_000, data[100_000:])
    assert r.status == 503 and error_code(r) == "storage_unavailable"
    assert r.headers["Retry-After"] == "7" and r.headers["Upload-Offset"] == str(len(data))
    assert json.loads(r.body)["error"]["details"]["retry_after"] == 7
    assert tus.staging.data_path(uid).read_bytes() == data  # kept, whole
    status = _status(tus, uid)
    assert status["state"] == STORING and status["offset"] == len(data)
    assert status["error"]["code"] == "storage_unavailable"

    # HEAD while still down: 423 (tus-js-client would start a new upload on a 503 HEAD), no offset
    clock.now += dt.timedelta(days=3)  # waiting for storage never expires the verified bytes
    assert tus.cleanup_expired() == 0
    h = head(tus, uid)
    assert h.status == 423 and h.headers["Retry-After"] == "7" and "Upload-Offset" not in h.headers
    assert tus.staging.data_path(uid).exists() and app_hooks.completed == []

    flaky.down = False
    h = head(tus, uid)
    assert h.status == 200 and h.headers["Upload-Offset"] == h.headers["Upload-Length"] == str(len(data))
    [info] = app_hooks.completed
    assert app_hooks.stored_sha256(uid) == hashlib.sha256(data).hexdigest() == info.sha256
    assert not tus.staging.data_path(uid).exists()
    assert _status(tus, uid)["state"] == COMPLETE and _status(tus, uid)["error"] is None
    assert head(tus, uid).status == 200 and len(app_hooks.completed) == 1
    assert flaky.ended == []


def test_empty_patch_at_the_end_retries_the_hand_over(tus, flaky, app_hooks) -> None:
    uid, data = _half_uploaded(tus)
    flaky.down = True
    assert patch(tus, uid, 100_000, data[100_000:]).status == 503
    r = patch(tus, uid, len(data), b"")
    assert r.status == 503 and r.headers["Upload-Offset"] == str(len(data))
    assert patch(tus, uid, len(data), b"x").status == 413  # never more bytes than declared
    flaky.down = False
    r = patch(tus, uid, len(data), b"")
    assert r.status == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert len(app_hooks.completed) == 1


def test_unexpected_hook_error_keeps_bytes_and_background_retry_completes(tus, flaky, app_hooks) -> None:
    uid, data = _half_uploaded(tus)
    flaky.broken = True
    r = patch(tus, uid, 100_000, data[100_000:])
    assert r.status == 500 and error_code(r) == "processing_failed" and "Retry-After" in r.headers
    assert tus.staging.data_path(uid).exists()
    assert tus.retry_pending() == []  # still broken: nothing handed over, nothing lost
    assert tus.staging.load(uid).state == STORING and tus.staging.data_path(uid).exists()
    flaky.broken = False
    calls = flaky.calls
    assert tus.retry_pending() == [uid]  # no client involved
    assert flaky.calls == calls + 1 and len(app_hooks.completed) == 1
    assert tus.retry_pending() == []  # done once
    assert head(tus, uid).headers["Upload-Offset"] == str(len(data))


def test_retry_pending_skips_an_upload_being_handed_over(tus, flaky) -> None:
    uid, data = _half_uploaded(tus)
    flaky.down = True
    patch(tus, uid, 100_000, data[100_000:])
    flaky.down = False
    with tus.staging.lock(uid):
        assert tus.retry_pending() == []
        h = head(tus, uid)
        assert h.status == 423 and h.headers["Retry-After"] and "Upload-Offset" not in h.headers
    assert tus.retry_pending() == [uid]


def test_creation_with_upload_while_storage_is_down(tus, flaky, app_hooks) -> None:
    flaky.down = True
    data = os.urandom(5000)
    r = create(tus, len(data), body=data)
    assert r.status == 503 and r.headers["Location"] and r.headers["Retry-After"]
    flaky.down = False
    assert head(tus, upload_id(r)).status == 200
    assert len(app_hooks.completed) == 1


def test_refusal_without_retry_after_still_fails_the_upload(tus, flaky, app_hooks, monkeypatch) -> None:
    uid, data = _half_uploaded(tus)

    def refuse(info):
        raise UploadRefused(422, "unknown_case", "The case was deleted.")
    monkeypatch.setattr(tus, "on_complete", refuse)
    r = patch(tus, uid, 100_000, data[100_000:])
    assert r.status == 422 and error_code(r) == "unknown_case"
    assert not tus.staging.data_path(uid).exists()
    assert flaky.ended == [(uid, "failed")]


def test_on_end_for_termination_expiry_and_checksum_failure(tus, flaky, clock) -> None:
    a = upload_id(create(tus, 1000))
    r = tus.handle(TusRequest("DELETE", a, dict(V), None, None, "/up", "alice"))
    assert r.status == 204 and flaky.ended == [(a, "cancelled")]

    b = upload_id(create(tus, 1000))
    clock.now += dt.timedelta(hours=25)
    assert tus.cleanup_expired() == 1
    assert flaky.ended[-1] == (b, "expired")

    c = upload_id(create(tus, 10, sha256="0" * 64))
    assert patch(tus, c, 0, b"0123456789").status == 422
    assert flaky.ended[-1] == (c, "failed")
