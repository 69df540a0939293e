"""The tus adapter under a real gunicorn, where PATCH bodies are read straight from the socket.

The in-process tests use Werkzeug's server; production runs gunicorn, whose body
objects the adapter reads with ``recv_into`` (see ``web/tus_adapter.py``). These
tests start gunicorn with both worker classes the project uses and check
integrity, resume after a cut connection, and keep-alive after a body read that way.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Bearer bench"  # what bench/upload.py's app accepts
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sync", "gthread"])
def gunicorn_url(request, tmp_path: Path):
    dirs = {name: tmp_path / name for name in ("staging", "store", "results")}
    for d in dirs.values():
        d.mkdir()
    port = _free_port()
    env = dict(os.environ, BENCH_STAGING=str(dirs["staging"]), BENCH_STORE=str(dirs["store"]),
               BENCH_RESULTS=str(dirs["results"]), BENCH_CHECKPOINT_MIB="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-w", "1", "-k", request.param, "--threads", "2",
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "bench.upload:make_app()"],
        cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}/api/v1/uploads/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.options(url, timeout=2)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start")
                time.sleep(0.1)
        yield url, dirs["results"]
    finally:
        proc.terminate()
        proc.wait(20)


def _result(results: Path, location: str) -> dict:
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    path = results / f"{upload_id}.json"
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return json.loads(path.read_text())


def test_tuspy_chunks_with_checksums(gunicorn_url, tmp_path: Path) -> None:
    url, results = gunicorn_url
    src = tmp_path / "slide.bin"
    src.write_bytes(os.urandom(9 << 20) + b"odd tail")
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    uploader = tus_client.TusClient(url, headers={"Authorization": TOKEN}).uploader(
        str(src), chunk_size=4 << 20, upload_checksum=True, metadata={"filename": "slide.bin", "sha256": digest})
    uploader.upload()
    assert _result(results, uploader.url)["sha256"] == digest


def test_cut_connection_keeps_bytes_and_resumes(gunicorn_url) -> None:
    url, results = gunicorn_url
    data = os.urandom(6 << 20)
    digest = hashlib.sha256(data).hexdigest()
    headers = {"Authorization": TOKEN, "Tus-Resumable": "1.0.0"}
    created = requests.post(url, headers={**headers, "Upload-Length": str(len(data))})
    assert created.status_code == 201
    location = created.headers["Location"]
    target = location if location.startswith("http") else url.split("/api/")[0] + location
    parts = urlsplit(target)
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: {TOKEN}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head + data[: 3 << 20])  # about half, then the connection is cut
        time.sleep(0.5)
        sock.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + 10
    while True:
        offset = int(requests.head(target, headers=headers).headers["Upload-Offset"])
        if offset > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert 0 < offset <= 3 << 20, "the bytes that arrived before the cut are kept"
    with requests.Session() as session:  # the rest, then a HEAD on the same kept-alive connection
        done = session.patch(target, data=data[offset:], headers={
            **headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
        assert done.status_code == 204, done.text
        again = session.head(target, headers=headers)
        assert again.status_code == 200 and int(again.headers["Upload-Offset"]) == len(data)
    assert _result(results, target)["sha256"] == digest


@pytest.mark.no_database
def test_socket_body_reads_gunicorn_buffer_then_socket() -> None:
    """With gunicorn's own objects: bytes gunicorn buffered come first, lengths stay in step."""
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    from pathology_hub.uploads.tus import ClientDisconnected
    from pathology_hub.web.tus_adapter import _GunicornSocketBody

    left, right = socket.socketpair()
    payload = os.urandom(300_000)
    unreader = SocketUnreader(left)
    unreader.unread(payload[:1000])  # what gunicorn read along with the headers
    body = Body(LengthReader(unreader, len(payload) + 10))  # 10 bytes will never come
    reader = _GunicornSocketBody.wrap({"wsgi.input": body, "gunicorn.socket": left})
    assert reader is not None and reader.prefers_readinto
    sender = threading.Thread(target=right.sendall, args=(payload[1000:],))
    sender.start()  # the socket buffer is smaller than the payload: send while reading
    buf = bytearray(len(payload) + 10)
    got = 0
    got += reader.readinto(memoryview(buf)[:500])  # part of gunicorn's buffer; the rest is kept
    assert got == 500 and body.reader.length == len(payload) + 10 - 500
    while got < len(payload):
        got += reader.readinto(memoryview(buf)[got:])
    sender.join(10)
    assert bytes(buf[:got]) == payload and body.reader.length == 10
    right.close()
    with pytest.raises(ClientDisconnected):
        reader.readinto(memoryview(buf)[got:])
    assert body.failed  # gunicorn must not reuse this connection
    left.close()
    # Anything that is not gunicorn's exact objects keeps the standard stream.
    assert _GunicornSocketBody.wrap({"wsgi.input": object(), "gunicorn.socket": left}) is None
