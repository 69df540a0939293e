"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set), a fresh app per test, logged-in clients, real slides.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# Fixtures every folder uses (plain helpers such as tus_upload live in tests/fixtures/uploads.py).
from tests.fixtures.slides import _ready_templates, demo_case_id, ready_slide, synthetic_slide  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SHARED_SLIDES = ROOT.parent / "shared" / "slides"
IN_CI = os.environ.get("CI", "").lower() == "true"
DB_FREE_DIRS = {"storage", "tiling", "slides", "uploads"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in DB_FREE_DIRS:
            item.add_marker(pytest.mark.no_database)
        # A test that drives Chromium is a browser test (run once, SQLite pass) even if its marker was forgotten.
        if "browser" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.browser)


def _build_url_builders_lazily() -> None:
    """Every test creates its own app, and Werkzeug compiles two URL builders per rule while the
    app registers its ~130 rules (0.3 s of the ~0.5 s an app costs; ~10 minutes of the suite's CPU).
    A test calls url_for on a handful of rules: compile each builder the first time it is used.
    Same generated code, same results; only the moment of compiling moves."""
    from werkzeug.routing.rules import Rule

    compile_builder = Rule._compile_builder

    def lazy(self, append_unknown=True):
        compiled = []

        def build(rule, *args, **kwargs):
            if not compiled:
                compiled.append(compile_builder(rule, append_unknown).__get__(rule, None))
            return compiled[0](*args, **kwargs)
        return build
    Rule._compile_builder = lazy


_build_url_builders_lazily()


def require(condition: bool, reason: str) -> None:
    """Skip when a service or file is missing, except under CI=true where that is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_slides() -> Path:
    require(SHARED_SLIDES.is_dir(), f"{SHARED_SLIDES} is not present")
    return SHARED_SLIDES


# ------------------------------------------------------------------ database
@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        engine = create_engine(url)
        with engine.begin() as conn:  # a clean schema for this session
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    from pathology_hub.migrate import upgrade
    upgrade(url)
    return url


def _truncate_all(url: str) -> None:
    from pathology_hub.db import get_engine
    from pathology_hub.models import Base
    engine = get_engine()
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # A leaked transaction would make TRUNCATE wait forever; fail loudly instead.
            conn.execute(text("SET LOCAL lock_timeout = '30s'"))
            conn.execute(text("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                conn.execute(text(f"DELETE FROM {name}"))
            conn.execute(text("DELETE FROM sqlite_sequence")) if conn.execute(
                text("SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")).first() else None


@pytest.fixture
def settings(tmp_path, database_url):
    from pathology_hub.config import Settings
    instance = tmp_path / "instance"
    instance.mkdir()
    return Settings(instance_path=instance, database_url=database_url,
                    storage_url=f"file://{instance / 'objects'}",
                    queue_url=f"sqlite:///{instance / 'queue.db'}", secret_key="test-secret-key",
                    argon2_time_cost=1, argon2_memory_kib=8192, login_max_failures=3)


@pytest.fixture
def app(settings):
    from pathology_hub.app import create_app
    from pathology_hub.db import SessionLocal
    from pathology_hub.queue import huey
    application = create_app(settings, TESTING=True)
    _truncate_all(settings.database_url)
    huey.immediate = True
    yield application
    huey.immediate = False
    SessionLocal.remove()


@pytest.fixture
def db(app):
    """The test's own session: requests served in this thread remove the scoped one."""
    from pathology_hub.db import SessionLocal
    session = SessionLocal.session_factory()
    yield session
    session.close()


@pytest.fixture
def world(app, db):
    """The demo consortium: UNIV, DIST1, DIST2, COMM1, COMM2 and one user per role."""
    from pathology_hub.demo import ensure_demo_data
    ensure_demo_data(db)
    db.commit()
    return db


PASSWORD = "demo-pass-2026"
CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


class Client:
    """A Flask test client that knows its CSRF token, like a browser page would."""

    def __init__(self, app, username: str | None = None):
        self.app = app
        self.http = app.test_client()
        self.csrf = None
        if username:
            self.login(username)

    def refresh_csrf(self) -> str:
        page = self.http.get("/")
        if page.status_code != 200:
            page = self.http.get("/login")
        match = CSRF_RE.search(page.get_data(as_text=True))
        if match:
            self.csrf = match.group(1)
        return self.csrf

    def login(self, username: str, password: str = PASSWORD):
        self.http.get("/login")
        token = CSRF_RE.search(self.http.get("/login").get_data(as_text=True)).group(1)
        resp = self.http.post("/login", data={"username": username, "password": password, "csrf_token": token})
        if resp.status_code == 302:
            self.refresh_csrf()
        return resp

    def get(self, *a, **kw):
        return self.http.get(*a, **kw)

    def _send(self, method: str, path: str, **kw):
        headers = dict(kw.pop("headers", {}) or {})
        if self.csrf:
            headers.setdefault("X-CSRFToken", self.csrf)
        return getattr(self.http, method)(path, headers=headers, **kw)

    def post(self, path, **kw):
        return self._send("post", path, **kw)

    def put(self, path, **kw):
        return self._send("put", path, **kw)

    def patch(self, path, **kw):
        return self._send("patch", path, **kw)

    def delete(self, path, **kw):
        return self._send("delete", path, **kw)


@pytest.fixture
def client_for(app, world):
    def make(username: str | None = None) -> Client:
        return Client(app, username)
    return make


# ------------------------------------------------------------------ live server for browser tests
@pytest.fixture
def flask_tile_calls(app, monkeypatch) -> list[int]:
    """Grows by one per request the Flask tile endpoint answers (the WSGI fast path bypasses it)."""
    calls: list[int] = []
    view = app.view_functions["slides.tile"]

    def counting(*args, **kwargs):
        calls.append(1)
        return view(*args, **kwargs)
    monkeypatch.setitem(app.view_functions, "slides.tile", counting)
    return calls


@pytest.fixture
def live_server(app):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    require(Path("/usr/bin/chromium").exists(), "Debian's chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                     "--disable-component-update", "--no-first-run", "--disable-sync",
                                     "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def artifacts() -> Path:
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
