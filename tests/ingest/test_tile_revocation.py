"""Logout and deactivation stop tiles and DZI at once, not when the tile token expires.

A copied session cookie plus a tile URL (token) is what an attacker or a shared workstation
keeps after logout. Ending the session in the same process stops them immediately; ending it
anywhere else (another web process, the CLI, straight in the database) within about a second,
the time each process trusts its remembered answer (``session_liveness.RECHECK_SECONDS``).
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select, update

from pathology_hub.models import User, UserSession

DEADLINE = 1.5  # seconds: RECHECK_SECONDS plus slack for a loaded machine


def _viewer(app, client_for, ready_slide, demo_case_id, flask_tile_calls):
    """The technician's client, a second browser holding a copy of its cookie, and the URLs."""
    tech = client_for("tech")
    ready_slide(demo_case_id)  # serving is under test here, not ingest
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg")
    copy = app.test_client()
    copy.set_cookie("ph_session", tech.http.get_cookie("ph_session").value)
    assert copy.get(tile_url).status_code == 200 and flask_tile_calls == [], "fast path before"
    assert copy.get(info["dzi_url"]).status_code == 200
    return tech, copy, tile_url, info["dzi_url"]


def _refused_within(copy, urls, seconds: float) -> float:
    start = time.monotonic()
    while any(copy.get(u).status_code == 200 for u in urls):
        assert time.monotonic() - start < seconds, "tiles still served after the session ended"
        time.sleep(0.05)
    return time.monotonic() - start


def test_logout_stops_tiles_and_dzi_at_once(app, client_for, world, ready_slide, demo_case_id,
                                            flask_tile_calls):
    tech, copy, tile_url, dzi_url = _viewer(app, client_for, ready_slide, demo_case_id, flask_tile_calls)
    for _ in range(3):  # a live session keeps the fast path past each recheck
        time.sleep(0.4)
        assert copy.get(tile_url).status_code == 200
    assert flask_tile_calls == []
    assert tech.post("/logout").status_code == 302
    for url in (tile_url, dzi_url):
        assert copy.get(url).status_code == 404
    assert copy.get("/api/v1/me").status_code == 401


def test_a_session_ended_in_another_process_stops_its_tiles_within_a_second(
        app, client_for, world, db, ready_slide, demo_case_id, flask_tile_calls):
    tech, copy, tile_url, dzi_url = _viewer(app, client_for, ready_slide, demo_case_id, flask_tile_calls)
    # what a logout served by another gunicorn worker does: only the database knows
    db.execute(update(UserSession).values(revoked_at=dt.datetime.now(dt.timezone.utc)))
    db.commit()
    _refused_within(copy, [tile_url, dzi_url], DEADLINE)
    assert copy.get(tile_url).status_code == 404 and copy.get(dzi_url).status_code == 404


def test_flask_users_deactivate_stops_tiles_within_a_second(app, client_for, world, ready_slide,
                                                            demo_case_id, flask_tile_calls):
    tech, copy, tile_url, dzi_url = _viewer(app, client_for, ready_slide, demo_case_id, flask_tile_calls)
    result = app.test_cli_runner().invoke(args=["users", "deactivate", "tech"])
    assert result.exit_code == 0, result.output
    _refused_within(copy, [tile_url, dzi_url], DEADLINE)
    assert tech.get(tile_url).status_code == 404 and tech.get("/api/v1/me").status_code == 401


def test_admin_deactivation_stops_tiles_within_a_second(app, client_for, world, db, ready_slide,
                                                        demo_case_id, flask_tile_calls):
    tech, copy, tile_url, dzi_url = _viewer(app, client_for, ready_slide, demo_case_id, flask_tile_calls)
    admin = client_for("admin")
    tech_id = db.scalar(select(User.id).where(User.username == "tech"))
    assert admin.post(f"/admin/users/{tech_id}/active", data={"active": "0"}).status_code == 302
    _refused_within(copy, [tile_url, dzi_url], DEADLINE)

