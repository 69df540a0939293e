"""X-HTTP-Method-Override cannot smuggle a write past the CSRF check: a GET stays a GET, and an
overridden POST is checked for the CSRF token like any other browser write."""

from __future__ import annotations

from tests.fixtures.uploads import tus_metadata

TUS = {"Tus-Resumable": "1.0.0"}


def _create(client, case_id: int) -> str:
    resp = client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": tus_metadata(
        filename="x.svs", case_id=str(case_id), stain="H&E")})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.headers["Location"]


def test_get_with_method_override_neither_appends_nor_deletes(client_for, demo_case_id):
    tech = client_for("tech")
    location = _create(tech, demo_case_id)
    bare = tech.http  # the session cookie only, no CSRF header: what a cross-site request carries
    patch = bare.get(location, data=b"abc", headers={**TUS, "X-HTTP-Method-Override": "PATCH", "Upload-Offset": "0",
                                                     "Content-Type": "application/offset+octet-stream"})
    assert patch.status_code != 204
    delete = bare.get(location, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert delete.status_code != 204
    head = tech.http.head(location, headers=TUS)
    assert head.status_code == 200 and head.headers["Upload-Offset"] == "0"


def test_overridden_post_needs_the_csrf_token(client_for, demo_case_id):
    tech = client_for("tech")
    location = _create(tech, demo_case_id)
    refused = tech.http.post(location, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert refused.status_code == 400 and tech.http.head(location, headers=TUS).status_code == 200
    assert tech.post(location, headers={**TUS, "X-HTTP-Method-Override": "DELETE"}).status_code == 204
    assert tech.http.head(location, headers=TUS).status_code == 404
