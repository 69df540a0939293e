"""Finding 8 of issue 16: request bodies are bounded per route before they are read, and JSON
nesting is bounded; tus uploads stream on unaffected."""

from __future__ import annotations

import http.client
import io
import json
import re
from urllib.parse import urlsplit

import pytest
import requests

from tests.fixtures.uploads import tus_metadata

LIMIT = 4096


@pytest.fixture
def settings(settings):
    settings.max_json_bytes = LIMIT
    settings.max_form_bytes = 2 * LIMIT
    settings.max_import_bytes = 4 * LIMIT
    return settings


class Unreadable(io.RawIOBase):
    """A request body that must never be read (it stands for 400 MB that never left the client)."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, b):
        self.read_bytes += len(b)
        raise AssertionError("the body was read although its declared length is over the limit")


def declared(client, method, path, length, *, content_type="application/json", headers=None):
    body = Unreadable()
    env = {"CONTENT_LENGTH": str(length), "CONTENT_TYPE": content_type, "wsgi.input": body}
    resp = getattr(client.http, method)(path, headers={**(headers or {}), **({"X-CSRFToken": client.csrf}
                                                                           if client.csrf else {})},
                                       environ_overrides=env)
    return resp, body


def test_default_json_limit_is_one_mib(monkeypatch, tmp_path):
    from pathology_hub.config import Settings
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    for name in ("MAX_JSON_BYTES", "MAX_IMPORT_BYTES", "MAX_FORM_BYTES"):
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert s.max_json_bytes == 1 << 20 and s.max_import_bytes > s.max_json_bytes
    monkeypatch.setenv("MAX_JSON_BYTES", "2048")
    assert Settings.from_env().max_json_bytes == 2048


def test_declared_oversized_json_is_refused_before_reading(client_for):
    tech = client_for("tech")
    resp, body = declared(tech, "post", "/api/v1/cases", 400 * 2**20)
    assert resp.status_code == 413 and body.read_bytes == 0
    assert resp.get_json()["error"]["code"] == "body_too_large"
    assert resp.get_json()["error"]["details"]["max_bytes"] == LIMIT
    # Just under the limit is read and judged on its content.
    ok = tech.post("/api/v1/cases", data=b" " * (LIMIT - 10) + b"{}", headers={"Content-Type": "application/json"})
    assert ok.status_code == 422


def test_form_post_over_limit_gets_the_html_error_page_in_chinese(client_for, world):
    from sqlalchemy import update

    from pathology_hub.models import User
    world.execute(update(User).where(User.username == "tech").values(locale="zh_CN"))
    world.commit()
    tech = client_for("tech")
    resp, body = declared(tech, "post", "/cases/new", 3 * LIMIT, content_type="application/x-www-form-urlencoded",
                          headers={"Accept": "text/html"})
    assert resp.status_code == 413 and body.read_bytes == 0
    html = resp.get_data(as_text=True)
    assert resp.mimetype == "text/html" and "body_too_large" in html and "请求过大" in html


def test_import_route_takes_larger_bodies_than_plain_json(client_for):
    p = client_for("pathologist")
    body = json.dumps({"type": "FeatureCollection", "features": [], "pad": "x" * (2 * LIMIT)})
    # Over the JSON limit, under the import limit: the route's own checks answer (no such slide here).
    resp = p.post("/api/v1/slides/999999/annotations/import", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 404
    resp, read = declared(p, "post", "/api/v1/slides/999999/annotations/import", 5 * LIMIT)
    assert resp.status_code == 413 and read.read_bytes == 0


def _chunked_post(base: str, path: str, cookie: str, csrf: str, chunks: list[bytes]):
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    conn.putrequest("POST", path)
    for k, v in {"Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cookie": cookie,
                 "X-CSRFToken": csrf, "Accept": "application/json"}.items():
        conn.putheader(k, v)
    conn.endheaders()
    try:
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed before the rest arrived: that is the point
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, json.loads(data or b"{}")


def test_chunked_body_without_length_is_cut_off_at_the_limit(live_server, world):
    s = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(f"{live_server}/login").text).group(1)
    assert s.post(f"{live_server}/login", data={"username": "tech", "password": "demo-pass-2026",
                                                "csrf_token": token}).status_code == 200
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', s.get(f"{live_server}/").text).group(1)
    cookie = "; ".join(f"{k}={v}" for k, v in s.cookies.items())
    big = [b'{"pad": "'] + [b"x" * 1024] * 40 + [b'"}']
    status, body = _chunked_post(live_server, "/api/v1/cases", cookie, csrf, big)
    assert status == 413 and body["error"]["code"] == "body_too_large", body
    # A small chunked body is read normally (and judged on its content).
    status, body = _chunked_post(live_server, "/api/v1/cases", cookie, csrf, [b'{"case_number"', b': ""}'])
    assert status == 422, body


@pytest.mark.parametrize("depth, status, code", [(200_000, 400, "json_too_deep"), (65, 400, "json_too_deep"),
                                                 (64, 422, "invalid_json")])
def test_json_nesting_is_bounded(client_for, settings, depth, status, code):
    settings.max_json_bytes = 1 << 20  # the default: 400 KB of brackets fit
    tech = client_for("tech")
    body = "[" * depth + "]" * depth
    resp = tech.post("/api/v1/cases", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["error"]["code"] == code


def test_deep_json_in_every_parser_answers_400(client_for, settings):
    settings.max_json_bytes = settings.max_import_bytes = 1 << 20
    p = client_for("pathologist")
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    for path, method in (("/api/v1/slides/1/annotations/import", "post"), ("/api/v1/reports/1", "put"),
                         ("/api/v1/consultations/1/actions", "post")):
        resp = getattr(p, method)(path, data=deep, headers={"Content-Type": "application/json"})
        assert resp.status_code in (400, 404), (path, resp.status_code)  # never 500
    from pathology_hub.domain.annotations import parse_json_document
    from pathology_hub.domain.json_limits import JsonTooDeep
    with pytest.raises(JsonTooDeep):
        parse_json_document(("[" * 200_000 + "]" * 200_000).encode())


def test_tus_patch_is_not_limited_by_the_json_limit(client_for, demo_case_id):
    tech = client_for("tech")
    size = 20 * LIMIT
    created = tech.post("/api/v1/uploads/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(size),
        "Upload-Metadata": tus_metadata(filename="a.svs", case_id=str(demo_case_id), sha256="0" * 64)})
    assert created.status_code == 201, created.get_data(as_text=True)
    resp = tech.patch(created.headers["Location"], data=b"\0" * (10 * LIMIT), headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    assert resp.headers["Upload-Offset"] == str(10 * LIMIT)


@pytest.fixture
def demo_case_id(world):
    from sqlalchemy import select

    from pathology_hub.models import Case
    return world.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))
