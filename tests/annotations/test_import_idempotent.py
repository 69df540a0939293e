"""Re-importing GeoJSON updates instead of duplicating (issue 15, item 6).

Export → import must leave the slide as it was; an edited feature updates its annotation
(version bumped, list cache refreshed); "import as copies" is explicit; ids of another
slide never reach that slide's annotations; identical geometry + class without our ids
is recognised too."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from pathology_hub.models import Annotation, AuditEvent

from .conftest import api, square
from .test_qupath_exchange import QUPATH_FILE

pytestmark = pytest.mark.usefixtures("consultation_grant")


def live_count(db, slide_id):
    db.expire_all()
    return db.scalar(select(func.count(Annotation.id)).where(Annotation.slide_id == slide_id,
                                                            Annotation.deleted_at.is_(None)))


def seven_on(c, slide_id):
    """Seven objects: the four of the QuPath file and three drawn in the viewer."""
    assert c.post(api(slide_id, "/import"), json=QUPATH_FILE).status_code == 201
    for i in range(3):
        drawn = {"geometry": square(3000 + 200 * i, 3000), "properties": {"class": "inflammation", "name": f"D{i}"}}
        assert c.post(api(slide_id), json=drawn).status_code == 201
    return json.loads(c.get(api(slide_id, "/export.geojson")).get_data())


def post_import(c, slide_id, doc, query=""):
    resp = c.post(api(slide_id, "/import" + query), data=json.dumps(doc), content_type="application/json")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json


def test_export_then_import_changes_nothing(client_for, slide_id, world):
    c = client_for("pathologist")
    exported = seven_on(c, slide_id)
    before = {f["id"]: f["properties"]["version"] for f in c.get(api(slide_id)).json["features"]}
    result = post_import(c, slide_id, exported)
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 0, 7)
    assert result["imported"] == 0 and result["renamed"] == []
    assert live_count(world, slide_id) == 7
    after = {f["id"]: f["properties"]["version"] for f in c.get(api(slide_id)).json["features"]}
    assert after == before
    event = world.scalars(select(AuditEvent).where(AuditEvent.action == "annotation.import")
                          .order_by(AuditEvent.id.desc())).first()
    assert json.loads(event.details)["unchanged"] == 7


def test_edited_feature_updates_its_annotation(client_for, slide_id, world):
    c = client_for("pathologist")
    exported = seven_on(c, slide_id)
    c.get(api(slide_id))  # fills the per-(id, version) list cache
    target = next(f for f in exported["features"] if f["properties"].get("name") == "D1")
    target["properties"]["metadata"] = {"comment": "re-read: margin involved"}
    target["geometry"] = square(3200, 3000, 150)
    result = post_import(c, slide_id, exported)
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 1, 6)
    assert live_count(world, slide_id) == 7
    listed = next(f for f in c.get(api(slide_id)).json["features"] if f["properties"]["uuid"] == target["id"])
    assert listed["properties"]["version"] == 2
    assert listed["properties"]["comment"] == "re-read: margin involved"
    assert listed["geometry"] == square(3200, 3000, 150)
    # The list reflects the new version, not a cached text of version 1.
    assert listed["properties"]["area_um2"] == pytest.approx(150 * 150 * 0.25 ** 2)


def test_import_as_copies_is_explicit(client_for, slide_id, world):
    c = client_for("pathologist")
    exported = seven_on(c, slide_id)
    result = post_import(c, slide_id, exported, "?as_copies=1")
    assert (result["created"], result["updated"], result["unchanged"]) == (7, 0, 0)
    assert len(result["renamed"]) == 7
    assert live_count(world, slide_id) == 14
    bad = c.post(api(slide_id, "/import?as_copies=maybe"), json=exported)
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_field"


def test_ids_of_another_slide_are_new_here_and_never_touch_that_slide(client_for, slide_id, other_slide_id, world):
    c = client_for("pathologist")
    exported = seven_on(c, slide_id)
    original = {f["id"]: (f["properties"]["version"], f["geometry"]) for f in c.get(api(slide_id)).json["features"]}
    for f in exported["features"]:  # a changed file aimed at slide A's ids, imported into slide B
        f["properties"]["name"] = "hijacked"
    result = post_import(c, other_slide_id, exported)
    assert (result["created"], result["updated"], result["unchanged"]) == (7, 0, 0)
    assert live_count(world, other_slide_id) == 7 and live_count(world, slide_id) == 7
    again = {f["id"]: (f["properties"]["version"], f["geometry"]) for f in c.get(api(slide_id)).json["features"]}
    assert again == original
    assert all(f["properties"]["name"] != "hijacked" for f in c.get(api(slide_id)).json["features"])


def test_same_geometry_and_class_without_ids_is_not_duplicated(client_for, slide_id, world):
    c = client_for("pathologist")
    exported = seven_on(c, slide_id)
    for f in exported["features"]:
        del f["id"]  # e.g. a file re-saved by a tool that drops ids
    result = post_import(c, slide_id, exported)
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 0, 7)
    assert live_count(world, slide_id) == 7
    # Same geometry but another class is a different object.
    moved = {"type": "Feature", "geometry": square(3000, 3000), "properties": {"classification": {"name": "necrosis"}}}
    assert post_import(c, slide_id, moved)["created"] == 1


def test_another_authors_annotation_is_not_overwritten(client_for, slide_id, world):
    mine = client_for("pathologist")
    exported = seven_on(mine, slide_id)
    expert = client_for("expert")
    assert post_import(expert, slide_id, exported)["unchanged"] == 7   # equal: no copies either
    target = next(f for f in exported["features"] if f["properties"].get("name") == "D0")
    target["properties"]["name"] = "expert's version"
    result = post_import(expert, slide_id, exported)
    assert (result["created"], result["updated"], result["unchanged"]) == (1, 0, 6)
    names = [f["properties"]["name"] for f in mine.get(api(slide_id)).json["features"]]
    assert "D0" in names and "expert's version" in names
