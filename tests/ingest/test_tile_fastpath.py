"""The WSGI tile fast path answers exactly like the Flask endpoint, and only with a valid token."""

from __future__ import annotations

VOLATILE = {"Date", "Vary", "Set-Cookie"}


def test_fast_path_serves_token_requests_like_flask(app, client_for, world, ready_slide, demo_case_id,
                                                    flask_tile_calls):
    tech = client_for("tech")
    ready_slide(demo_case_id)  # serving is under test here, not ingest
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg")
    bare_url = tile_url.split("?", 1)[0]
    calls = flask_tile_calls

    fast = tech.get(tile_url)
    assert fast.status_code == 200 and calls == [], "a valid token must not reach Flask"
    slow = tech.get(bare_url)  # no token: the session's full policy check in Flask
    assert slow.status_code == 200 and calls == [1]
    assert fast.data == slow.data and fast.data[:2] == b"\xff\xd8"
    headers = {k: v for k, v in fast.headers.items() if k not in VOLATILE}
    assert headers == {k: v for k, v in slow.headers.items() if k not in VOLATILE}
    assert headers["Content-Type"] == "image/jpeg" and int(headers["Content-Length"]) == len(fast.data)
    assert "immutable" in headers["Cache-Control"] and headers["X-Content-Type-Options"] == "nosniff"

    not_modified = tech.get(tile_url, headers={"If-None-Match": fast.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.data == b"" and calls == [1]
    head = tech.http.head(tile_url)
    assert head.status_code == 200 and head.data == b"" and calls == [1]

    # Outside the pyramid: the fast path steps aside and Flask answers 404 with a JSON error.
    outside = tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/11/999_999.jpeg"))
    assert outside.status_code == 404 and calls == [1, 1]


def test_token_without_its_session_falls_through_to_the_policy(app, client_for, world, ready_slide,
                                                               demo_case_id, flask_tile_calls):
    tech = client_for("tech")
    ready_slide(demo_case_id)  # serving is under test here, not ingest
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg")
    calls = flask_tile_calls

    other = client_for("tech2")  # another centre's technician with the copied URL
    assert other.get(tile_url).status_code == 404 and calls == [1]
    anon = app.test_client()
    assert anon.get(tile_url).status_code == 404 and calls == [1, 1]
    forged = tile_url.rsplit("t=", 1)[0] + "t=9999999999.AAAA"
    assert tech.get(forged).status_code == 200 and calls == [1, 1, 1]  # session check in Flask still allows


def test_remembered_grants_and_sessions_expire_with_the_token(app, client_for, world, ready_slide,
                                                              demo_case_id, monkeypatch, flask_tile_calls):
    """The fast path memoises verified cookies and tokens; the memo must never outlive them."""
    import time as real_time

    from pathology_hub.domain import tile_access
    from pathology_hub.web import tile_fastpath

    tech = client_for("tech")
    ready_slide(demo_case_id)  # serving is under test here, not ingest
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg")
    calls = flask_tile_calls
    assert tech.get(tile_url).status_code == 200 and tech.get(tile_url).status_code == 200
    assert calls == [], "both answered by the fast path, the second from the memo"

    later = real_time.time() + tile_access.TOKEN_TTL_SECONDS + 5

    class _Clock:
        @staticmethod
        def time() -> float:
            return later
    monkeypatch.setattr(tile_fastpath, "time", _Clock)
    assert tech.get(tile_url).status_code == 200 and calls == [1], "an expired token must go to Flask"

    monkeypatch.setattr(tile_fastpath, "time", real_time)
    fresh = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]["dzi_url"]
    assert tech.post("/logout").status_code == 302
    fresh_tile = fresh.replace("slide.dzi", "slide_files/11/1_1.jpeg")
    assert tech.get(fresh_tile).status_code in (401, 404), "after logout no tile, memo or not"
