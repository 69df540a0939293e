"""The public verification endpoints are throttled per client IP (one shared budget, then 429)."""

from __future__ import annotations

import pytest

from .conftest import signed_report


@pytest.fixture
def limited_app(settings):
    """The application with a small verification budget (the default is 30 per minute)."""
    from pathology_hub.app import create_app
    from pathology_hub.db import SessionLocal
    from tests.conftest import _truncate_all
    application = create_app(settings, TESTING=True, VERIFY_RATE_LIMIT="5 per minute")
    _truncate_all(settings.database_url)
    yield application
    SessionLocal.remove()


def _from(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def test_lookups_beyond_the_budget_get_429_per_client_ip(limited_app):
    a = _from(limited_app, "203.0.113.7")
    # normal use works: the form, a lookup by form (the redirect is free), JSON and HTML lookups
    assert a.get("/verify").status_code == 200
    assert a.get("/verify?code=ABCDEFGHJKMNPQRS").status_code == 302
    assert a.get("/verify/ABCDEFGHJKMNPQRS").status_code == 404
    assert a.get("/api/v1/verify/ABCDEFGHJKMNPQRS").json["error"]["code"] == "unknown_code"
    assert a.get("/api/v1/verify/YYYYYYYYYYYYYYYY").headers["X-RateLimit-Remaining"] == "1"
    ok = a.get("/api/v1/verify/ZZZZZZZZZZZZZZZZ")  # the 5th counted request
    assert ok.status_code == 404 and ok.headers["X-RateLimit-Remaining"] == "0"

    # the 6th counted lookup within the minute is refused, JSON for the API...
    blocked = a.get("/api/v1/verify/QQQQQQQQQQQQQQQQ")
    assert blocked.status_code == 429
    assert blocked.json["error"]["code"] == "rate_limited"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 60
    # ...a translated page for browsers, and the form shares the budget
    page = a.get("/verify/QQQQQQQQQQQQQQQQ", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 429 and "Retry-After" in page.headers
    html = page.get_data(as_text=True)
    assert "rate_limited" in html and "验证" in html
    assert a.get("/verify").status_code == 429

    # another client address still has its own budget
    b = _from(limited_app, "198.51.100.20")
    assert b.get("/api/v1/verify/ABCDEFGHJKMNPQRS").status_code == 404


def test_default_budget_lets_normal_use_through(client_for, scenario, app):
    """30 per minute by default: a real signed report's code verifies, repeatedly, for one reader."""
    assert app.config["VERIFY_RATE_LIMIT"] == "30 per minute"
    code = signed_report(client_for, scenario)["current"]["verification_code"]
    anon = client_for()
    for _ in range(10):
        resp = anon.get(f"/api/v1/verify/{code}")
        assert resp.status_code == 200 and resp.json["valid"] is True
    assert anon.get(f"/verify/{code}").status_code == 200


def test_a_bad_limit_setting_is_refused_at_startup(settings):
    from pathology_hub.app import create_app
    with pytest.raises(RuntimeError, match="VERIFY_RATE_LIMIT"):
        create_app(settings, TESTING=True, VERIFY_RATE_LIMIT="lots")
