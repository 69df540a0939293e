"""Fixtures for the tus upload tests: a staging dir, a server with recording hooks, a Flask app."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from pathology_hub.uploads import StagingArea, TusServer, UploadInfo, UploadRefused
from pathology_hub.web.tus_adapter import make_tus_blueprint

TOKEN = "Bearer test-token"
MAX_SIZE = 64 << 20


class FakeClock:
    """Lets tests move time forward to exercise expiration without sleeping."""

    def __init__(self) -> None:
        self.now = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class App:
    """What the application would do in its hooks, recorded for assertions."""

    store: Path
    completed: list[UploadInfo] = field(default_factory=list)
    created: list[tuple[Any, dict[str, str], Any]] = field(default_factory=list)
    quota_left: int = 1 << 40

    def before_create(self, length: int | None, metadata: dict[str, str], principal: Any) -> dict[str, Any]:
        if "filename" not in metadata:
            raise UploadRefused(400, "missing_filename", "Upload-Metadata must include filename.")
        if length is not None and length > self.quota_left:
            raise UploadRefused(413, "quota_exceeded", "This upload would exceed your storage quota.")
        self.created.append((length, metadata, principal))
        return {"user": principal}

    def on_complete(self, info: UploadInfo) -> None:
        assert info.data_path is not None
        shutil.copyfile(info.data_path, self.store / info.id)
        self.completed.append(info)

    def stored_sha256(self, upload_id: str) -> str:
        return hashlib.sha256((self.store / upload_id).read_bytes()).hexdigest()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app_hooks(tmp_path: Path) -> App:
    store = tmp_path / "store"
    store.mkdir()
    return App(store)


@pytest.fixture
def staging(tmp_path: Path) -> StagingArea:
    return StagingArea(tmp_path / "staging")


@pytest.fixture
def server(staging: StagingArea, app_hooks: App, clock: FakeClock) -> TusServer:
    return TusServer(staging, max_size=MAX_SIZE, expiration=dt.timedelta(hours=24),
                     before_create=app_hooks.before_create, on_complete=app_hooks.on_complete,
                     authorize=lambda info, principal: info.owner.get("user") == principal,
                     lock_wait=0.2, clock=clock)


def _authenticate() -> str | None:
    return "alice" if request.headers.get("Authorization") == TOKEN else None


@pytest.fixture
def flask_app(server: TusServer) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024  # like a real app's form limit; tus must bypass it
    app.register_blueprint(make_tus_blueprint(lambda: server, authenticate=_authenticate))
    return app


@pytest.fixture
def live_url(flask_app: Flask) -> Iterator[str]:
    """The Flask app on a real loopback socket (threaded Werkzeug server)."""
    http = make_server("127.0.0.1", 0, flask_app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}/api/v1/uploads/"
    finally:
        http.shutdown()
        thread.join(5)
