"""CSRF, security headers, error format, bearer tokens, health endpoints, logging."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from pathology_hub.models import User


def test_security_headers_on_every_response(client_for):
    c = client_for()
    for path in ("/login", "/healthz", "/api/v1/me", "/static/css/app.css"):
        resp = c.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["X-Frame-Options"] == "DENY"


def test_session_cookie_flags(client_for):
    c = client_for()
    c.http.get("/login")
    from tests.conftest import CSRF_RE
    token = CSRF_RE.search(c.http.get("/login").get_data(as_text=True)).group(1)
    resp = c.http.post("/login", data={"username": "tech", "password": "demo-pass-2026", "csrf_token": token})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_no_inline_script_in_pages(client_for):
    c = client_for("tech")
    for path in ("/", "/cases/new", "/account/password"):
        html = c.get(path).get_data(as_text=True)
        assert "<script>" not in html and "onclick=" not in html and "style=" not in html


def test_csrf_required_for_forms_and_json(client_for):
    c = client_for("tech")
    resp = c.http.post("/api/v1/cases", json={"case_number": "X1", "patient_pseudo_id": "P1"})
    assert resp.status_code == 400 and resp.json["error"]["code"] == "csrf_failed"
    resp = c.http.post("/logout")
    assert resp.status_code == 400
    resp = c.post("/api/v1/cases", json={"case_number": "X1", "patient_pseudo_id": "P1"})
    assert resp.status_code == 201


def test_json_errors_have_stable_shape(client_for):
    c = client_for("tech")
    resp = c.post("/api/v1/cases", data="not json", content_type="application/json")
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_json"
    resp = c.post("/api/v1/cases", json={"case_number": "", "patient_pseudo_id": "P"})
    assert resp.json["error"] == {"code": "missing_field", "message": "Case number is required.",
                                  "details": {"field": "case_number"}}
    resp = c.get("/api/v1/no-such-thing")
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"
    resp = c.get("/no-such-page")
    assert resp.status_code == 404 and "text/html" in resp.content_type and "Traceback" not in resp.get_data(as_text=True)


def test_unexpected_error_has_no_stack_trace(app, client_for):
    @app.route("/api/v1/boom-for-test")
    def boom():
        raise RuntimeError("secret internals")
    c = client_for("tech")
    resp = c.get("/api/v1/boom-for-test")
    assert resp.status_code == 500
    assert resp.json["error"]["code"] == "internal_error"
    assert "secret internals" not in resp.get_data(as_text=True)


def test_api_token_auth_without_csrf(app, world, db):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "token", "tech", "--name", "scanner-1"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    http = app.test_client()
    resp = http.post("/api/v1/cases", json={"case_number": "TOK-1", "patient_pseudo_id": "P9"},
                     headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.json
    assert http.get("/api/v1/me", headers={"Authorization": "Bearer phk_wrong"}).status_code == 401
    runner.invoke(args=["users", "deactivate", "tech"])
    assert http.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_cli_user_and_institution_management(app, world, db):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["institutions", "create", "--code", "COMM9", "--name", "新社区", "--tier", "community",
                            "--refers-to", "DIST1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["users", "create", "--username", "newtech", "--full-name", "New Tech", "--role",
                            "technician", "--institution", "COMM9", "--password", "long-enough-pw"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(args=["users", "create", "--username", "badpath", "--full-name", "X", "--role",
                            "pathologist", "--institution", "COMM9", "--password", "long-enough-pw"])
    assert r.exit_code == 2 and "district or university" in r.output
    r = runner.invoke(args=["institutions", "create", "--code", "DIST9", "--name", "x", "--tier", "district",
                            "--refers-to", "COMM1"])
    assert r.exit_code == 2 and "higher tier" in r.output
    assert db.scalar(select(User).where(User.username == "newtech")).institution.code == "COMM9"


def test_healthz_and_readyz(client_for, app, monkeypatch):
    c = client_for()
    assert c.get("/healthz").json == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["database"]["ok"]
    from pathology_hub import runtime
    from storage.errors import StorageUnavailable

    class Down:
        def ping(self):
            raise StorageUnavailable("down")
    monkeypatch.setattr(runtime, "store", lambda: Down())
    resp = c.get("/readyz")
    assert resp.status_code == 503 and resp.json["checks"]["storage"]["ok"] is False


def test_openapi_lists_the_api(client_for):
    spec = client_for().get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/cases/{case_id}" in spec["paths"]
    assert "post" in spec["paths"]["/api/v1/cases"]


def test_logs_are_json_and_never_contain_passwords(app, client_for, capsys):
    from pathology_hub.logging_setup import JsonFormatter
    record = logging.LogRecord("t", logging.INFO, "x", 1, "hello", (), None)
    record.password = "hunter2hunter2"
    record.patient_name = "张三"
    line = json.loads(JsonFormatter().format(record))
    assert line["password"] == "[redacted]" and line["patient_name"] == "[redacted]" and line["msg"] == "hello"
