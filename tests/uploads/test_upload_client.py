"""The product's upload client (``pathology_hub.upload_client``, used by ``flask upload``) on a real socket.

A small TCP proxy between client and server injects the faults that matter
for a pipelined client: a byte flipped on the wire (the server must refuse the
chunk by its Upload-Checksum and the client must resend it from disk) and a
connection cut mid-chunk (a second run must continue the same upload).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from tinydb import TinyDB
from tusclient import client as tus_client

from pathology_hub.upload_client import HubUploader, UploadError, hash_file

CHUNK = 256 << 10


class FaultyProxy:
    """Forwards TCP to the server; can flip one request byte or cut a connection, once.

    Positions count request bytes over all connections (the client sends its
    requests one after another; the test server closes each connection).
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.flip_at: int | None = None
        self.cut_after: int | None = None
        self.sent_after_cut = 0  # request bytes forwarded after the cut
        self.responses = bytearray()
        self._position = 0
        self._cut = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._requests, args=(client, server), daemon=True).start()
            threading.Thread(target=self._responses, args=(server, client), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        try:
            while data := client.recv(1 << 16):
                start, self._position = self._position, self._position + len(data)
                if self._cut:
                    self.sent_after_cut += len(data)
                elif self.cut_after is not None and self._position >= self.cut_after:
                    self._cut = True
                    server.sendall(data[: self.cut_after - start])
                    break
                if self.flip_at is not None and start <= self.flip_at < self._position:
                    data = bytearray(data)
                    data[self.flip_at - start] ^= 0xFF
                    self.flip_at = None
                server.sendall(data)
        except OSError:
            pass
        for sock in (client, server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _responses(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while data := server.recv(1 << 16):
                self.responses += data
                client.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def proxy(live_url: str) -> Iterator[FaultyProxy]:
    parts = urlsplit(live_url)
    p = FaultyProxy((parts.hostname, parts.port))
    yield p
    p.close()


@pytest.fixture
def slide(tmp_path: Path) -> Path:
    path = tmp_path / "slide.svs"
    path.write_bytes(os.urandom(2 << 20) + b"tail")  # not a multiple of the chunk size
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hub(port: int, state: Path, **kwargs) -> HubUploader:
    return HubUploader(f"http://127.0.0.1:{port}", "test-token", state, chunk_size=CHUNK, retry_delay=0, **kwargs)


def test_pipelined_upload_matches_and_forgets_finished_upload(live_url, slide, app_hooks, tmp_path) -> None:
    port = urlsplit(live_url).port
    url, digest = _hub(port, tmp_path / "state.json").send(slide, {"filename": slide.name})
    [info] = app_hooks.completed
    assert digest == _sha256(slide) == info.sha256 == app_hooks.stored_sha256(info.id)
    assert info.metadata["sha256"] == digest  # declared with the last chunk: verified before on_complete
    assert url.endswith(info.id)
    assert TinyDB(tmp_path / "state.json").all() == []  # nothing left to resume


def test_corrupted_chunk_is_refused_and_resent(proxy, slide, app_hooks, tmp_path) -> None:
    proxy.flip_at = CHUNK + 100_000  # inside the second PATCH body
    _url, digest = _hub(proxy.port, tmp_path / "state.json").send(slide, {"filename": slide.name})
    assert b" 460 " in proxy.responses  # the server refused the chunk by its Upload-Checksum
    [info] = app_hooks.completed
    assert info.sha256 == digest == _sha256(slide) == app_hooks.stored_sha256(info.id)


def test_corrupted_chunk_without_retries_is_a_clear_error(proxy, slide, app_hooks, tmp_path) -> None:
    proxy.flip_at = 100_000
    with pytest.raises(UploadError, match="does not match Upload-Checksum"):
        _hub(proxy.port, tmp_path / "state.json", retries=0).send(slide, {"filename": slide.name})
    assert app_hooks.completed == []


def test_interrupted_upload_resumes_where_the_server_is(proxy, slide, app_hooks, tmp_path) -> None:
    state = tmp_path / "state.json"
    size = slide.stat().st_size
    proxy.cut_after = 3 * CHUNK + 50_000  # request headers included: inside the fourth chunk
    with pytest.raises(UploadError):
        _hub(proxy.port, state, retries=0).send(slide, {"filename": slide.name})
    [remembered] = TinyDB(state).all()

    url, digest = _hub(proxy.port, state, retries=3).send(slide, {"filename": slide.name})
    assert url == remembered["url"]  # the same upload continued, no second one created
    assert len(app_hooks.created) == 1
    # the three chunks the server had confirmed were not sent again; the cut fourth one was, whole
    assert size - 3 * CHUNK <= proxy.sent_after_cut < size - 2 * CHUNK
    [info] = app_hooks.completed
    assert info.sha256 == digest == _sha256(slide) == app_hooks.stored_sha256(info.id)
    assert info.metadata["sha256"] == digest  # the resumed run re-read the sent part to declare it


def test_file_modified_during_the_upload_is_refused_before_its_last_chunk(live_url, slide, app_hooks,
                                                                          tmp_path, monkeypatch) -> None:
    from pathology_hub import upload_client

    real_init = upload_client.PipelinedUploader.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.file_mtime_ns -= 1  # as if the scanner rewrote the file after the upload started
    monkeypatch.setattr(upload_client.PipelinedUploader, "__init__", init)
    with pytest.raises(UploadError, match="modified while it was being uploaded"):
        _hub(urlsplit(live_url).port, tmp_path / "state.json", retries=0).send(slide, {"filename": slide.name})
    assert app_hooks.completed == []


def test_other_metadata_is_a_new_upload_not_a_resume(proxy, slide, app_hooks, tmp_path) -> None:
    """The same file for another case must not continue (or complete as) the first case's upload."""
    state = tmp_path / "state.json"
    proxy.cut_after = 2 * CHUNK + 10_000
    with pytest.raises(UploadError):
        _hub(proxy.port, state, retries=0).send(slide, {"filename": slide.name, "case_id": "1"})
    _hub(proxy.port, state).send(slide, {"filename": slide.name, "case_id": "2"})
    assert [c[1]["case_id"] for c in app_hooks.created] == ["1", "2"]
    assert [i.metadata["case_id"] for i in app_hooks.completed] == ["2"]


def test_expired_remembered_upload_starts_again(live_url, slide, app_hooks, clock, tmp_path, caplog) -> None:
    state = tmp_path / "state.json"
    hub = _hub(urlsplit(live_url).port, state)
    metadata = {"filename": slide.name}
    # an interrupted upload remembered in the state file, which then expired on the server
    first = tus_client.TusClient(hub.endpoint, headers=hub.headers).uploader(
        str(slide), chunk_size=CHUNK, metadata={**metadata, "sha256": _sha256(slide)})
    first.upload_chunk()
    key = hub.resume_key(slide, metadata)
    TinyDB(state).insert({"key": key, "url": first.url})
    clock.now += dt.timedelta(days=2)
    with caplog.at_level(logging.INFO, logger="pathology_hub.upload"):
        url, digest = hub.send(slide, metadata)
    assert "gone on the server (410)" in caplog.text  # the remembered URL was found, then dropped
    assert url != first.url
    [info] = app_hooks.completed
    assert info.sha256 == digest == _sha256(slide) == app_hooks.stored_sha256(info.id)


@pytest.mark.parametrize("chunk_size", [3 << 20, 8 << 20, 1 << 30], ids=["3MiB", "8MiB", "one-chunk"])
def test_hash_file_chunk_digests_match_the_chunks(tmp_path, chunk_size) -> None:
    """Chunk boundaries need not line up with the 8 MiB read blocks."""
    path = tmp_path / "f.bin"
    data = os.urandom((20 << 20) + 7)
    path.write_bytes(data)
    whole, chunks = hash_file(path, chunk_size, "sha1")
    assert whole == hashlib.sha256(data).hexdigest()
    expected = {off: (len(data[off:off + chunk_size]), hashlib.sha1(data[off:off + chunk_size]).digest())
                for off in range(0, len(data), chunk_size)}
    assert chunks == expected
