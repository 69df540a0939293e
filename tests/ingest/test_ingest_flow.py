"""From a tus upload to tiles in the viewer, through the application's own endpoints."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from pathology_hub.models import AuditEvent, Slide, SlideStatus, StoredOriginal
from tests.fixtures.uploads import tus_upload


def _only_slide(db) -> Slide:
    db.expire_all()
    return db.scalars(select(Slide)).one()


def test_upload_inspect_tile_and_serve(client_for, db, synthetic_slide, demo_case_id, app):
    tech = client_for("tech")
    resp = tus_upload(tech, synthetic_slide, demo_case_id)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    slide = _only_slide(db)
    assert slide.status is SlideStatus.READY, (slide.status, slide.reject_message)
    assert slide.original.sha256 == hashlib.sha256(synthetic_slide.read_bytes()).hexdigest()

    info = tech.get(f"/api/v1/slides/{slide.id}").json
    assert (info["width"], info["height"], info["mpp"]) == (3000, 2200, 0.25)
    assert info["quality"]["tissue_fraction"] > 0.1
    assert info["progress"]["phase"] == "done"

    dzi = tech.get(info["dzi_url"])
    assert dzi.status_code == 200 and b'TileSize="256"' in dzi.data and b'Overlap="0"' in dzi.data and b'Width="3000"' in dzi.data
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/12/0_0.jpeg")
    tile = tech.get(tile_url)
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg" and tile.data[:2] == b"\xff\xd8"
    assert tile.headers["Content-Length"] == str(len(tile.data))
    assert "immutable" in tile.headers["Cache-Control"] and tile.headers["Cache-Control"].startswith("private")
    etag = tile.headers["ETag"]
    again = tech.get(tile_url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    # Outside the pyramid, or not a number: 404, never a path into storage.
    assert tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/99/0_0.jpeg")).status_code == 404
    assert tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/12/..%2F..%2Fx_0.jpeg")).status_code == 404

    # The same URL in another browser (no session) fails, and so does another institution's user.
    assert app.test_client().get(tile_url).status_code in (302, 401, 404)
    other = client_for("tech2")
    assert other.get(tile_url).status_code == 404
    assert other.get(f"/api/v1/slides/{slide.id}").status_code == 404
    # Without the token but with a session that may see the slide, the full check still serves it.
    assert tech.get(tile_url.split("?")[0]).status_code == 200

    assert tech.get(f"/api/v1/slides/{slide.id}/thumbnail.jpg").data[:2] == b"\xff\xd8"
    page = tech.get(f"/cases/{demo_case_id}/viewer").get_data(as_text=True)
    assert 'id="viewer-config"' in page and "slide.dzi" in page
    actions = {e.action for e in db.scalars(select(AuditEvent))}
    assert {"upload.create", "slide.uploaded", "slide.ready"} <= actions


def test_duplicate_upload_is_stored_once_and_linked_twice(client_for, db, synthetic_slide, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    assert tus_upload(tech, synthetic_slide, demo_case_id, filename="again.svs").status_code == 409  # duplicate_slide
    assert tus_upload(tech, synthetic_slide, demo_case_id, filename="again.svs",
                      allow_duplicate=True).status_code == 201
    db.expire_all()
    assert len(db.scalars(select(Slide)).all()) == 2
    assert len(db.scalars(select(StoredOriginal)).all()) == 1


def test_wrong_whole_file_checksum_is_rejected(client_for, db, synthetic_slide, demo_case_id):
    tech = client_for("tech")
    resp = tus_upload(tech, synthetic_slide, demo_case_id, sha256="0" * 64)
    assert resp.status_code == 422 and resp.json["error"]["code"] == "checksum_mismatch"
    db.expire_all()
    assert db.scalars(select(Slide)).all() == []


def test_rejected_file_has_a_clear_reason(client_for, db, tmp_path, demo_case_id):
    bogus = tmp_path / "scan.svs"
    bogus.write_text("this is not an image at all\n" * 50)
    tech = client_for("tech")
    assert tus_upload(tech, bogus, demo_case_id).status_code == 201
    slide = _only_slide(db)
    assert slide.status is SlideStatus.REJECTED and slide.reject_code == "not_an_image"
    listing = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json
    assert listing["slides"][0]["reject_message"]
    assert "not an image" in tech.get(f"/cases/{demo_case_id}").get_data(as_text=True)
    assert tech.get(f"/api/v1/slides/{slide.id}").json["status"] == "rejected"


def test_upload_limits_and_permissions(client_for, db, synthetic_slide, demo_case_id, app):
    from pathology_hub import upload_server
    app.config["SETTINGS"].max_slide_bytes = 1000
    upload_server._server = None  # the tus server reads the limit when it is built
    tech = client_for("tech")
    resp = tus_upload(tech, synthetic_slide, demo_case_id)
    assert resp.status_code == 413 and resp.json["error"]["code"] == "file_too_large"
    assert "largest" in resp.json["error"]["message"]
    app.config["SETTINGS"].max_slide_bytes = 1 << 40
    upload_server._server = None
    app.config["SETTINGS"].institution_quota_bytes = 1000
    resp = tus_upload(tech, synthetic_slide, demo_case_id)
    assert resp.status_code == 413 and resp.json["error"]["code"] == "quota_exceeded"
    app.config["SETTINGS"].institution_quota_bytes = 1 << 40
    for username in ("tech2", "pathologist", "clinician"):
        resp = tus_upload(client_for(username), synthetic_slide, demo_case_id)
        assert resp.status_code in (403, 404), (username, resp.status_code)
    db.expire_all()
    assert db.scalars(select(Slide)).all() == []


def test_label_only_for_the_uploading_centre(client_for, db, shared_slides, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, shared_slides / "aperio-jpeg-CMU-1-Small-Region.svs", demo_case_id).status_code == 201
    slide = _only_slide(db)
    assert slide.status is SlideStatus.READY, slide.reject_message
    names = [a["name"] for a in tech.get(f"/api/v1/slides/{slide.id}").json["associated_images"]]
    assert "thumbnail" in names


def test_deleting_a_slide_deletes_its_pyramid_after_the_retention_period(client_for, db, synthetic_slide,
                                                                         demo_case_id):
    from pathology_hub import runtime
    from pathology_hub.domain import slide_facts
    tech = client_for("tech")
    tus_upload(tech, synthetic_slide, demo_case_id)
    slide = _only_slide(db)
    store = runtime.store()
    assert any(True for _ in store.list(f"pyramids/{slide.uid}/"))
    assert tech.delete(f"/api/v1/slides/{slide.id}").status_code == 204  # a withdrawal (slide_facts.py)
    assert any(True for _ in store.list(f"pyramids/{slide.uid}/"))  # kept during the retention period
    db.expire_all()
    slide_facts.purge_withdrawn(db, store, now=db.get(Slide, slide.id).purge_after)
    assert not any(True for _ in store.list(f"pyramids/{slide.uid}/"))
    assert tech.get(f"/api/v1/slides/{slide.id}").status_code == 404
    db.expire_all()
    assert db.get(Slide, slide.id).deleted_at is not None  # kept for the record
