"""Protocol behaviour of TusServer, driven through its framework-neutral request type."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import os
import threading

import pytest

from pathology_hub.uploads import StagingArea, TusRequest, TusServer, validate_upload_id
from pathology_hub.uploads.staging import InvalidUploadId
from pathology_hub.uploads.tus import ClientDisconnected, http_date, parse_metadata

V = {"Tus-Resumable": "1.0.0"}
OCTET = {"Content-Type": "application/offset+octet-stream"}


def meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(server: TusServer, length: int | None = None, *, principal: str = "alice", body: bytes | None = None,
           **metadata: str):
    headers = dict(V, **{"Upload-Metadata": meta(filename="slide.svs", **metadata)})
    if length is None:
        headers["Upload-Defer-Length"] = "1"
    else:
        headers["Upload-Length"] = str(length)
    if body is not None:
        headers.update(OCTET)
    return server.handle(TusRequest("POST", None, headers, io.BytesIO(body or b""),
                                    len(body) if body is not None else 0, "/up", principal))


def upload_id(resp) -> str:
    return resp.headers["Location"].rsplit("/", 1)[1]


def patch(server: TusServer, uid: str, offset: int, data: bytes, *, principal: str = "alice",
          body=None, **headers: str):
    h = dict(V, **OCTET, **{"Upload-Offset": str(offset)})
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return server.handle(TusRequest("PATCH", uid, h, body or io.BytesIO(data), len(data), "/up", principal))


def head(server: TusServer, uid: str, principal: str = "alice"):
    return server.handle(TusRequest("HEAD", uid, dict(V), None, None, "/up", principal))


def error_code(resp) -> str:
    return json.loads(resp.body)["error"]["code"]


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_options_advertises_extensions_and_limits(server: TusServer) -> None:
    resp = server.handle(TusRequest("OPTIONS", None, {}))
    assert resp.status == 204
    assert resp.headers["Tus-Version"] == "1.0.0"
    assert set(resp.headers["Tus-Extension"].split(",")) >= {
        "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "expiration"}
    assert resp.headers["Tus-Max-Size"] == str(64 << 20)
    assert "sha256" in resp.headers["Tus-Checksum-Algorithm"].split(",")


def test_create_patch_head_complete(server: TusServer, app_hooks, clock) -> None:
    data = os.urandom(300_000)
    resp = create(server, len(data), sha256=hashlib.sha256(data).hexdigest())
    assert resp.status == 201 and resp.headers["Location"].startswith("/up/")
    assert resp.headers["Upload-Expires"] == http_date(clock.now + dt.timedelta(hours=24))
    uid = upload_id(resp)
    assert app_hooks.created[0][1]["filename"] == "slide.svs"

    h = head(server, uid)
    assert h.status == 200 and h.headers["Upload-Offset"] == "0"
    assert h.headers["Upload-Length"] == str(len(data)) and h.headers["Cache-Control"] == "no-store"
    assert parse_metadata(h.headers["Upload-Metadata"])["filename"] == "slide.svs"

    r = patch(server, uid, 0, data[:100_000])
    assert r.status == 204 and r.headers["Upload-Offset"] == "100000" and "Upload-Expires" in r.headers
    assert app_hooks.completed == []
    r = patch(server, uid, 100_000, data[100_000:])
    assert r.status == 204 and r.headers["Upload-Offset"] == str(len(data))
    [info] = app_hooks.completed
    assert info.sha256 == hashlib.sha256(data).hexdigest() == app_hooks.stored_sha256(uid)
    assert info.owner == {"user": "alice"}
    # staged bytes are dropped once the application took the file; HEAD still reports completion
    assert not server.staging.data_path(uid).exists()
    assert head(server, uid).headers["Upload-Offset"] == str(len(data))
    # a repeated final PATCH does not call on_complete twice
    assert patch(server, uid, len(data), b"").status == 204
    assert len(app_hooks.completed) == 1


def test_version_content_type_and_offset_errors(server: TusServer) -> None:
    uid = upload_id(create(server, 10))
    no_version = server.handle(TusRequest("HEAD", uid, {}))
    assert no_version.status == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    old = server.handle(TusRequest("HEAD", uid, {"Tus-Resumable": "0.2.2"}))
    assert old.status == 412
    wrong_type = server.handle(TusRequest("PATCH", uid, dict(V, **{"Upload-Offset": "0"}), io.BytesIO(b"x"), 1,
                                          principal="alice"))
    assert wrong_type.status == 415
    assert patch(server, uid, 0, b"abc").status == 204
    conflict = patch(server, uid, 0, b"abc")
    assert conflict.status == 409 and error_code(conflict) == "offset_mismatch"
    assert "offset 3" in json.loads(conflict.body)["error"]["message"]
    assert head(server, uid).headers["Upload-Offset"] == "3"
    too_long = patch(server, uid, 3, b"x" * 8)
    assert too_long.status == 413 and head(server, uid).headers["Upload-Offset"] == "3"


def test_chunk_checksum(server: TusServer) -> None:
    data = os.urandom(5000)
    uid = upload_id(create(server, len(data) * 2))
    good = "sha256 " + b64(hashlib.sha256(data).digest())
    bad = "sha256 " + b64(hashlib.sha256(b"other").digest())
    r = patch(server, uid, 0, data, Upload_Checksum=bad)
    assert r.status == 460 and error_code(r) == "checksum_mismatch"
    assert head(server, uid).headers["Upload-Offset"] == "0"
    assert server.staging.data_path(uid).stat().st_size == 0
    assert patch(server, uid, 0, data, Upload_Checksum=good).status == 204
    sha1 = "sha1 " + b64(hashlib.sha1(data).digest())
    assert patch(server, uid, len(data), data, Upload_Checksum=sha1).status == 204
    r = patch(server, uid, len(data) * 2, b"", Upload_Checksum="crc32 AAAA")
    assert r.status == 400 and error_code(r) == "unsupported_checksum_algorithm"


def test_whole_file_checksum_mismatch_rejects_upload(server: TusServer, app_hooks) -> None:
    data = os.urandom(2000)
    uid = upload_id(create(server, len(data), sha256=hashlib.sha256(b"something else").hexdigest()))
    r = patch(server, uid, 0, data)
    assert r.status == 422 and error_code(r) == "checksum_mismatch"
    assert hashlib.sha256(data).hexdigest() in json.loads(r.body)["error"]["message"]
    assert app_hooks.completed == []
    h = head(server, uid)
    assert h.status == 422 and h.headers["Upload-Error"] == "checksum_mismatch"
    status = server.handle(TusRequest("GET", uid, {}, principal="alice"))
    assert json.loads(status.body)["state"] == "failed"
    assert json.loads(status.body)["error"]["code"] == "checksum_mismatch"


def test_whole_file_sha256_declared_with_the_last_chunk(server: TusServer, app_hooks) -> None:
    """Repr-Digest (RFC 9530) on a PATCH declares the whole-file SHA-256 of a client that hashes
    while sending; it is checked at completion exactly like the one in Upload-Metadata."""
    data = os.urandom(3000)
    good = f"sha-256=:{b64(hashlib.sha256(data).digest())}:"
    uid = upload_id(create(server, len(data)))
    assert patch(server, uid, 0, data[:1000]).status == 204
    assert patch(server, uid, 1000, data[1000:], Repr_Digest=f"sha-512=:{b64(b'x' * 64)}:, {good}").status == 204
    [info] = app_hooks.completed
    assert info.sha256 == hashlib.sha256(data).hexdigest() == info.metadata["sha256"]

    wrong = f"sha-256=:{b64(hashlib.sha256(b'other').digest())}:"
    uid = upload_id(create(server, len(data)))
    r = patch(server, uid, 0, data, Repr_Digest=wrong)
    assert r.status == 422 and error_code(r) == "checksum_mismatch"
    assert len(app_hooks.completed) == 1  # nothing more handed to the application

    uid = upload_id(create(server, len(data), sha256=hashlib.sha256(data).hexdigest()))
    r = patch(server, uid, 0, data, Repr_Digest=wrong)
    assert r.status == 400 and error_code(r) == "checksum_mismatch"
    assert head(server, uid).headers["Upload-Offset"] == "0"
    r = patch(server, uid, 0, data, Repr_Digest="sha-256=:not base64:")
    assert r.status == 400 and error_code(r) == "invalid_header"


def test_whole_file_hash_survives_other_process_and_restart(server: TusServer, app_hooks) -> None:
    """The per-process hash cache is lost (restart / other worker): the hash must still be right."""
    from pathology_hub.uploads import hashing

    data = os.urandom(200_000)
    uid = upload_id(create(server, len(data)))
    patch(server, uid, 0, data[:50_000])
    hashing.HASHES.drop((str(server.staging.root), uid))  # "another worker" wrote the next chunk
    patch(server, uid, 50_000, data[50_000:120_000])
    patch(server, uid, 120_000, data[120_000:])
    assert app_hooks.completed[0].sha256 == hashlib.sha256(data).hexdigest()


def test_partial_body_is_kept_unless_checksummed(server: TusServer) -> None:
    class Dropping(io.RawIOBase):
        """Delivers some bytes, then fails like a dropped connection."""

        def __init__(self, data: bytes) -> None:
            self.data = data

        def read(self, size: int = -1) -> bytes:
            if not self.data:
                raise ClientDisconnected("peer went away")
            out, self.data = self.data[:size], self.data[size:]
            return out

    uid = upload_id(create(server, 10_000))
    r = patch(server, uid, 0, b"x" * 10_000, body=Dropping(b"a" * 4000))
    assert r.status == 400 and error_code(r) == "incomplete_body"
    assert head(server, uid).headers["Upload-Offset"] == "4000"
    checksum = "sha256 " + b64(hashlib.sha256(b"b" * 6000).digest())
    patch(server, uid, 4000, b"b" * 6000, body=Dropping(b"b" * 3000), Upload_Checksum=checksum)
    assert head(server, uid).headers["Upload-Offset"] == "4000"
    assert server.staging.data_path(uid).stat().st_size == 4000


def test_defer_length_and_creation_with_upload(server: TusServer, app_hooks) -> None:
    r = create(server, None, body=b"hello ")
    uid = upload_id(r)
    assert r.status == 201 and r.headers["Upload-Offset"] == "6"
    assert head(server, uid).headers["Upload-Defer-Length"] == "1"
    r = patch(server, uid, 6, b"world", Upload_Length="11")
    assert r.status == 204 and r.headers["Upload-Offset"] == "11"
    assert (app_hooks.store / uid).read_bytes() == b"hello world"
    # an empty file completes on creation (tuspy sends no PATCH for it)
    empty = upload_id(create(server, 0))
    assert app_hooks.completed[-1].id == empty
    assert app_hooks.completed[-1].sha256 == hashlib.sha256(b"").hexdigest()


def test_refusals_from_limits_and_hooks(server: TusServer, app_hooks) -> None:
    too_big = create(server, (64 << 20) + 1)
    assert too_big.status == 413 and error_code(too_big) == "file_too_large"
    assert str(64 << 20) in json.loads(too_big.body)["error"]["message"]
    app_hooks.quota_left = 10
    quota = create(server, 11)
    assert quota.status == 413 and error_code(quota) == "quota_exceeded"
    no_name = server.handle(TusRequest("POST", None, dict(V, **{"Upload-Length": "1"}), principal="alice"))
    assert no_name.status == 400 and error_code(no_name) == "missing_filename"
    bad_meta = server.handle(TusRequest("POST", None, dict(V, **{"Upload-Length": "1", "Upload-Metadata": "a !!"})))
    assert bad_meta.status == 400 and error_code(bad_meta) == "invalid_metadata"
    assert list(server.staging.ids()) == []


def test_termination_and_other_users(server: TusServer) -> None:
    uid = upload_id(create(server, 100))
    assert head(server, uid, principal="mallory").status == 404
    assert server.handle(TusRequest("DELETE", uid, dict(V), principal="mallory")).status == 404
    assert server.handle(TusRequest("DELETE", uid, dict(V), principal="alice")).status == 204
    assert head(server, uid).status == 404
    assert patch(server, uid, 0, b"x").status == 404
    assert list(server.staging.root.iterdir()) == []


def test_method_override(server: TusServer) -> None:
    uid = upload_id(create(server, 3))
    h = dict(V, **OCTET, **{"Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    r = server.handle(TusRequest("POST", uid, h, io.BytesIO(b"abc"), 3, principal="alice"))
    assert r.status == 204 and r.headers["Upload-Offset"] == "3"


def test_expiration_and_cleanup(server: TusServer, clock) -> None:
    stale = upload_id(create(server, 100))
    clock.now += dt.timedelta(hours=12)
    fresh = upload_id(create(server, 100))
    clock.now += dt.timedelta(hours=13)
    r = head(server, stale)
    assert r.status == 410
    assert patch(server, stale, 0, b"x").status == 410
    assert head(server, fresh).status == 200
    assert server.cleanup_expired(clock.now) == 1
    assert head(server, stale).status == 404
    assert set(server.staging.ids()) == {fresh}


def test_ids_are_validated(staging: StagingArea, server: TusServer) -> None:
    for bad in ("../etc/passwd", "A" * 32, "0" * 31, "0" * 32 + "/x", ""):
        with pytest.raises(InvalidUploadId):
            validate_upload_id(bad)
    assert head(server, "..%2f..%2fetc").status == 404


def test_concurrent_patch_is_locked(server: TusServer) -> None:
    """A second PATCH while one holds the flock gets 423, then 409 once the offset moved."""
    uid = upload_id(create(server, 20))
    started, release = threading.Event(), threading.Event()

    class Slow(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = False

        def read(self, size: int = -1) -> bytes:
            if self.sent:
                return b""
            started.set()
            release.wait(5)
            self.sent = True
            return b"0123456789"

    result = {}
    t = threading.Thread(target=lambda: result.update(r=patch(server, uid, 0, b"x" * 10, body=Slow())))
    t.start()
    assert started.wait(5)
    locked = patch(server, uid, 0, b"y" * 10)
    release.set()
    t.join(5)
    assert locked.status == 423 and error_code(locked) == "upload_locked"
    assert result["r"].status == 204
    assert patch(server, uid, 0, b"y" * 10).status == 409


def test_method_override_never_turns_a_safe_method_into_a_write(server: TusServer) -> None:
    uid = upload_id(create(server, 3))
    for method, override in (("GET", "PATCH"), ("GET", "DELETE"), ("HEAD", "DELETE"), ("OPTIONS", "PATCH")):
        h = dict(V, **OCTET, **{"Upload-Offset": "0", "X-HTTP-Method-Override": override})
        server.handle(TusRequest(method, uid, h, io.BytesIO(b"abc"), 3, principal="alice"))
        r = head(server, uid)
        assert r.status == 200 and r.headers["Upload-Offset"] == "0", f"{method} as {override}: a write happened"
