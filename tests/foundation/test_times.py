"""Times are stored in UTC and shown in the viewing user's institution's zone, with the offset written."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from pathology_hub.domain import timezones
from pathology_hub.domain.errors import ValidationFailed
from pathology_hub.models import Case, Institution

NOON_UTC = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)
ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def test_one_text_form_with_the_offset():
    assert timezones.format_local(NOON_UTC, "Asia/Shanghai") == "2026-12-04 20:00 (UTC+08:00)"
    assert timezones.format_local(NOON_UTC.replace(tzinfo=None), "Asia/Shanghai") == "2026-12-04 20:00 (UTC+08:00)"
    assert timezones.format_local("2026-12-04T20:00:05+08:00", "UTC", seconds=True) == "2026-12-04 12:00:05 (UTC+00:00)"
    assert timezones.format_local(NOON_UTC, "America/St_Johns") == "2026-12-04 08:30 (UTC-03:30)"
    assert timezones.format_local(None, "Asia/Shanghai") == ""
    assert timezones.iso(NOON_UTC.replace(tzinfo=None)) == "2026-12-04T12:00:00+00:00"


def test_zone_names_are_checked_with_zoneinfo():
    assert timezones.validate_zone(" Europe/London ") == "Europe/London"
    assert timezones.validate_zone("") == "Asia/Shanghai"
    for bad in ("Mars/Olympus", "../etc/passwd", "Asia/Shanghai/x" * 10):
        with pytest.raises(ValidationFailed) as info:
            timezones.validate_zone(bad)
        assert info.value.code == "invalid_time_zone"


def test_jinja_filter_uses_the_viewers_institution_zone(app, world, client_for):
    tech = client_for("tech")  # COMM1, default zone
    world.execute(update(Institution).where(Institution.code == "DIST1").values(time_zone="Europe/Berlin"))
    world.commit()
    assert "2026-12-04 20:00 (UTC+08:00)" in _render_as(app, tech)
    admin = client_for("admin")  # DIST1
    assert "2026-12-04 13:00 (UTC+01:00)" in _render_as(app, admin)


def _render_as(app, client) -> str:
    """Render the filter inside a request carrying the client's session cookie."""
    cookie = client.http.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    headers = {"Cookie": f"{cookie.key}={cookie.value}"} if cookie else {}
    with app.test_request_context("/", headers=headers):
        app.preprocess_request()
        return app.jinja_env.from_string("{{ t|localtime }}").render(t=NOON_UTC)


def test_api_timestamps_carry_an_offset(client_for, world):
    tech = client_for("tech")
    made = tech.post("/api/v1/cases", json={"case_number": "TZ-1", "patient_pseudo_id": "P-TZ-1"})
    assert made.status_code == 201, made.json
    got = tech.get(f"/api/v1/cases/{made.json['id']}").json
    for key in ("created_at", "updated_at"):
        assert ISO_WITH_OFFSET.match(got[key]), (key, got[key])
    for case in tech.get("/api/v1/cases").json["cases"]:
        assert ISO_WITH_OFFSET.match(case["created_at"]), case["created_at"]
    assert client_for("admin").get("/api/v1/institutions").json["institutions"][0]["time_zone"] == "Asia/Shanghai"


def test_pages_show_the_zone_and_admin_changes_it(client_for, world):
    case = world.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    case.created_at = NOON_UTC
    world.commit()
    tech = client_for("tech")
    assert "2026-12-04 20:00 (UTC+08:00)" in tech.get("/").get_data(as_text=True)

    admin = client_for("admin")
    comm1 = world.scalar(select(Institution).where(Institution.code == "COMM1"))
    resp = admin.post(f"/admin/institutions/{comm1.id}/time_zone", data={"time_zone": "Mars/Olympus"},
                      follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert "invalid_time_zone" in page and 'data-testid="error-code"' in page
    admin.post(f"/admin/institutions/{comm1.id}/time_zone", data={"time_zone": "Europe/London"})
    world.expire_all()
    assert world.get(Institution, comm1.id).time_zone == "Europe/London"
    assert "2026-12-04 12:00 (UTC+00:00)" in tech.get("/").get_data(as_text=True)
    audit_page = admin.get("/admin/audit").get_data(as_text=True)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(UTC\+08:00\)", audit_page)  # admin is at DIST1
