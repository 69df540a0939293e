"""The Flask adapter through Flask's test client: routing, auth, JSON errors, streaming limits."""

from __future__ import annotations

import base64
import hashlib
import os

TOKEN = "Bearer test-token"  # same as conftest.TOKEN (not imported: conftest modules share one name)

AUTH = {"Authorization": TOKEN, "Tus-Resumable": "1.0.0"}
OCTET = "application/offset+octet-stream"


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(client, length: int, **metadata: str):
    return client.post("/api/v1/uploads", headers=dict(AUTH, **{
        "Upload-Length": str(length), "Upload-Metadata": _meta(filename="a.svs", **metadata)}))


def test_unauthenticated_requests_get_401_json(flask_app) -> None:
    client = flask_app.test_client()
    r = client.post("/api/v1/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "5"})
    assert r.status_code == 401
    assert r.get_json()["error"]["code"] == "authentication_required"
    r = client.options("/api/v1/uploads/")
    assert r.status_code == 204 and r.headers["Tus-Version"] == "1.0.0"
    assert "Access-Control-Allow-Origin" not in r.headers


def test_full_upload_over_http_bypasses_app_body_limit(flask_app, app_hooks) -> None:
    client = flask_app.test_client()
    data = os.urandom(200_000)  # far above the app's MAX_CONTENT_LENGTH of 1 KiB
    r = _create(client, len(data), sha256=hashlib.sha256(data).hexdigest())
    assert r.status_code == 201
    location = r.headers["Location"]
    assert location.startswith("/api/v1/uploads/")

    h = client.head(location, headers=AUTH)
    assert h.status_code == 200 and h.headers["Upload-Offset"] == "0" and h.data == b""
    assert h.headers["Cache-Control"] == "no-store"

    r = client.patch(location, data=data[:150_000], headers=dict(AUTH, **{
        "Upload-Offset": "0", "Content-Type": OCTET}))
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "150000"
    stale = client.patch(location, data=data[:10], headers=dict(AUTH, **{"Upload-Offset": "0", "Content-Type": OCTET}))
    assert stale.status_code == 409 and stale.get_json()["error"]["code"] == "offset_mismatch"
    r = client.patch(location, data=data[150_000:], headers=dict(AUTH, **{
        "Upload-Offset": "150000", "Content-Type": OCTET}))
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(len(data))
    assert app_hooks.completed[0].sha256 == hashlib.sha256(data).hexdigest()
    status = client.get(location, headers={"Authorization": TOKEN}).get_json()
    assert status["state"] == "complete" and status["sha256"] == hashlib.sha256(data).hexdigest()


def test_http_error_statuses(flask_app) -> None:
    client = flask_app.test_client()
    r = _create(client, (64 << 20) + 1)
    assert r.status_code == 413
    assert r.get_json()["error"] == {
        "code": "file_too_large",
        "message": f"The file is {(64 << 20) + 1} bytes; the largest upload allowed is {64 << 20} bytes."}
    location = _create(client, 100).headers["Location"]
    r = client.patch(location, data=b"x", headers=dict(AUTH, **{"Upload-Offset": "0", "Content-Type": "text/plain"}))
    assert r.status_code == 415
    r = client.patch(location, data=b"x", headers={"Authorization": TOKEN, "Upload-Offset": "0", "Content-Type": OCTET})
    assert r.status_code == 412
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(b"y").digest()).decode()
    r = client.patch(location, data=b"x", headers=dict(AUTH, **{
        "Upload-Offset": "0", "Content-Type": OCTET, "Upload-Checksum": checksum}))
    assert r.status_code == 460 and r.get_json()["error"]["code"] == "checksum_mismatch"
    assert client.head(location, headers=AUTH).headers["Upload-Offset"] == "0"
    # X-HTTP-Method-Override for proxies that only pass GET/POST
    r = client.post(location, data=b"x", headers=dict(AUTH, **{
        "Upload-Offset": "0", "Content-Type": OCTET, "X-HTTP-Method-Override": "PATCH"}))
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "1"
    assert client.delete(location, headers=AUTH).status_code == 204
    assert client.head(location, headers=AUTH).status_code == 404
    assert client.get("/api/v1/uploads/not-an-id", headers=AUTH).status_code == 404
