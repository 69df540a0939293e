"""Real tus client (tuspy) against the adapter served on a loopback socket."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed

TOKEN = "Bearer test-token"  # same as conftest.TOKEN (not imported: conftest modules share one name)

CHUNK = 256 << 10


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "slide.svs"
    path.write_bytes(os.urandom(3 << 20) + b"tail")  # not a multiple of the chunk size
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _client(url: str) -> tus_client.TusClient:
    return tus_client.TusClient(url, headers={"Authorization": TOKEN})


@pytest.mark.parametrize("upload_checksum", [False, True], ids=["plain", "sha1-per-chunk"])
def test_tuspy_upload_matches_sha256(live_url, big_file, app_hooks, upload_checksum) -> None:
    digest = _sha256(big_file)
    uploader = _client(live_url).uploader(str(big_file), chunk_size=CHUNK, upload_checksum=upload_checksum,
                                          metadata={"filename": big_file.name, "sha256": digest})
    uploader.upload()
    [info] = app_hooks.completed
    assert info.sha256 == digest == app_hooks.stored_sha256(info.id)
    assert info.length == big_file.stat().st_size


def _interrupted_patch(url: str, offset: int, payload: bytes, declared: int) -> None:
    """Send a PATCH declaring ``declared`` bytes, deliver only ``payload``, then drop the connection."""
    parts = urlsplit(url)
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {TOKEN}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + payload)
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_RDWR)


def _wait_for_offset(url: str, expected: int) -> int:
    deadline = time.monotonic() + 10
    offset = -1
    while time.monotonic() < deadline:
        r = requests.head(url, headers={"Authorization": TOKEN, "Tus-Resumable": "1.0.0"})
        offset = int(r.headers["Upload-Offset"])
        if offset == expected:
            break
        time.sleep(0.05)
    return offset


def test_interrupted_upload_resumes_from_server_offset(live_url, big_file, app_hooks) -> None:
    data = big_file.read_bytes()
    half = len(data) // 2 + 12345  # deliberately not chunk-aligned
    uploader = _client(live_url).uploader(str(big_file), chunk_size=CHUNK,
                                          metadata={"filename": big_file.name, "sha256": _sha256(big_file)})
    uploader.upload_chunk()  # creates the upload and sends the first 256 KiB
    url = uploader.url
    assert uploader.offset == CHUNK
    _interrupted_patch(url, CHUNK, data[CHUNK:half], declared=len(data) - CHUNK)
    assert _wait_for_offset(url, half) == half  # the bytes that did arrive were kept

    resumed = _client(live_url).uploader(str(big_file), url=url, chunk_size=CHUNK)
    assert resumed.offset == half
    resumed.upload()
    [info] = app_hooks.completed
    assert info.sha256 == _sha256(big_file) == app_hooks.stored_sha256(info.id)


def test_wrong_whole_file_sha256_is_rejected(live_url, big_file, app_hooks) -> None:
    uploader = _client(live_url).uploader(str(big_file), chunk_size=1 << 20,
                                          metadata={"filename": big_file.name, "sha256": "0" * 64})
    with pytest.raises(TusUploadFailed) as err:
        uploader.upload()
    assert err.value.status_code == 422
    assert json.loads(err.value.response_content)["error"]["code"] == "checksum_mismatch"
    assert app_hooks.completed == []
    r = requests.get(uploader.url, headers={"Authorization": TOKEN})
    assert r.json()["state"] == "failed" and r.json()["error"]["code"] == "checksum_mismatch"


def test_too_large_and_expired_and_terminated(live_url, big_file, server, clock, app_hooks) -> None:
    app_hooks.quota_left = 1000
    with pytest.raises(TusCommunicationError) as err:
        _client(live_url).uploader(str(big_file), metadata={"filename": "x"}).upload()
    assert err.value.status_code == 413
    assert json.loads(err.value.response_content)["error"]["code"] == "quota_exceeded"
    app_hooks.quota_left = 1 << 40

    uploader = _client(live_url).uploader(str(big_file), chunk_size=CHUNK, metadata={"filename": "x"})
    uploader.upload_chunk()
    clock.now += dt.timedelta(days=2)
    with pytest.raises(TusCommunicationError) as err:
        _client(live_url).uploader(str(big_file), url=uploader.url)
    assert err.value.status_code == 410
    assert server.cleanup_expired() == 1
    r = requests.head(uploader.url, headers={"Authorization": TOKEN, "Tus-Resumable": "1.0.0"})
    assert r.status_code == 404

    second = _client(live_url).uploader(str(big_file), chunk_size=CHUNK, metadata={"filename": "x"})
    second.upload_chunk()
    r = requests.delete(second.url, headers={"Authorization": TOKEN, "Tus-Resumable": "1.0.0"})
    assert r.status_code == 204
    r = requests.patch(second.url, data=b"x", headers={
        "Authorization": TOKEN, "Tus-Resumable": "1.0.0", "Upload-Offset": str(CHUNK),
        "Content-Type": "application/offset+octet-stream"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "upload_not_found"
