"""QuPath GeoJSON import and export: dialects, lossless round trip, all-or-nothing import."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from pathology_hub.models import Annotation, AuditEvent

from .conftest import api, square

pytestmark = pytest.mark.usefixtures("consultation_grant")

TUMOR_UUID = "5f8e7c1a-3b2d-4e6f-9a0b-1c2d3e4f5a6b"
DET_UUID = "0b9e1f2a-7c6d-4b5a-8e9f-0a1b2c3d4e5f"

QUPATH_FILE = {
    "type": "FeatureCollection",
    "features": [
        {   # QuPath 0.4/0.5: classification colour as [r, g, b], measurements as an object map
            "type": "Feature", "id": TUMOR_UUID,
            "geometry": square(1000, 1000, 400),
            "properties": {"objectType": "annotation", "name": "Region 1", "isLocked": False,
                           "classification": {"name": "Tumor", "color": [200, 0, 0]},
                           "measurements": {"Area µm^2": 10000.0, "Num Detections": 12},
                           "color": [255, 0, 0], "metadata": {"comment": "invasive front", "reader": "ZW"}},
        },
        {   # QuPath 0.2: legacy key object_type, packed colorRGB, measurements as a list
            "type": "Feature", "id": DET_UUID,
            "geometry": square(1100, 1100, 20),
            "properties": {"object_type": "detection", "isLocked": False,
                           "classification": {"name": "Stroma", "colorRGB": -3670016},
                           "measurements": [{"name": "Nucleus: Area", "value": 31.5},
                                            {"name": "Nucleus: Circularity", "value": "NaN"}]},
        },
        {   # a cell with its nucleus (kept verbatim), legacy "type" key
            "type": "Feature", "id": "c0ffee00-0000-4000-8000-000000000001",
            "geometry": square(1200, 1200, 30),
            "properties": {"type": "cell", "nucleusGeometry": square(1205, 1205, 10), "color": [0, 128, 255]},
        },
        {   # a MultiPolygon with a hole and no class
            "type": "Feature", "id": "d00d0000-0000-4000-8000-000000000002",
            "geometry": {"type": "MultiPolygon", "coordinates": [
                [[[0, 0], [300, 0], [300, 300], [0, 300], [0, 0]], [[100, 100], [200, 100], [200, 200], [100, 200], [100, 100]]],
                [[[500.125, 500.5], [600, 500.5], [600, 600], [500.125, 600], [500.125, 500.5]]]]},
            "properties": {"objectType": "annotation", "comment": "two foci"},
        },
    ],
}


def count_annotations(db, slide_id):
    db.expire_all()
    return db.scalar(select(func.count(Annotation.id)).where(Annotation.slide_id == slide_id))


def test_qupath_file_with_measurements_classes_detections(client_for, slide_id, world):
    c = client_for("pathologist")
    resp = c.post(api(slide_id, "/import"), json=QUPATH_FILE)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json == {"imported": 4, "created": 4, "updated": 0, "unchanged": 0, "detections": 2, "renamed": []}
    by_uuid = {f["properties"]["uuid"]: f for f in c.get(api(slide_id)).json["features"]}
    tumor = by_uuid[TUMOR_UUID]["properties"]
    assert (tumor["class"], tumor["color"], tumor["name"], tumor["comment"]) == \
        ("Tumor", "#c80000", "Region 1", "invasive front")          # unknown class kept with its own colour
    assert tumor["measurements"] == {"Area µm^2": 10000.0, "Num Detections": 12}
    assert tumor["object_type"] == "annotation" and tumor["locked"] is False
    det = by_uuid[DET_UUID]["properties"]
    assert det["object_type"] == "detection" and det["locked"] is True
    assert det["class"] == "Stroma" and det["color"] == "#c80000"        # -3670016 = 0xFFC80000
    assert det["measurements"] == {"Nucleus: Area": 31.5, "Nucleus: Circularity": None}
    cell = by_uuid["c0ffee00-0000-4000-8000-000000000001"]["properties"]
    assert (cell["object_type"], cell["class"], cell["color"]) == ("cell", None, "#0080ff")  # the object's own colour
    multi = by_uuid["d00d0000-0000-4000-8000-000000000002"]
    assert multi["geometry"] == QUPATH_FILE["features"][3]["geometry"]
    assert multi["properties"]["area_um2"] == pytest.approx((300 * 300 - 100 * 100 + 99.875 * 99.5) * 0.0625, abs=1e-3)
    # Detections are read-only, even for whoever imported them.
    resp = c.patch(api(slide_id, f"/{by_uuid[DET_UUID]['id']}"), json={"version": 1, "comment": "edit"})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "annotation_locked"
    assert c.delete(api(slide_id, f"/{by_uuid[DET_UUID]['id']}")).status_code == 403
    # Imported annotations belong to the importer and stay editable; an unchanged imported class is accepted.
    resp = c.patch(api(slide_id, f"/{by_uuid[TUMOR_UUID]['id']}"), json={"version": 1, "class": "Tumor", "comment": "ok"})
    assert resp.status_code == 200 and resp.json["properties"]["color"] == "#c80000"
    world.expire_all()
    event = world.scalar(select(AuditEvent).where(AuditEvent.action == "annotation.import"))
    assert json.loads(event.details)["count"] == 4


def test_export_then_import_elsewhere_is_lossless(client_for, slide_id, other_slide_id):
    c = client_for("pathologist")
    assert c.post(api(slide_id, "/import"), json=QUPATH_FILE).status_code == 201
    drawn = {"geometry": {"type": "Polygon", "coordinates": [[[7000.5, 100.25], [7100, 120], [7050, 300.75],
                                                             [7000.5, 100.25]]]},
             "properties": {"class": "inflammation", "comment": "<b>not bold</b>", "shape": "ellipse",
                            "name": "E1"}}
    assert c.post(api(slide_id), json=drawn).status_code == 201
    line = {"geometry": {"type": "LineString", "coordinates": [[1, 2], [3.000001, 4]]}, "class": "other"}
    assert c.post(api(slide_id), json=line).status_code == 201

    first = c.get(api(slide_id, "/export.geojson"))
    assert first.status_code == 200 and first.mimetype == "application/geo+json"
    assert "attachment" in first.headers["Content-Disposition"]
    first_doc = json.loads(first.get_data())
    assert len(first_doc["features"]) == 6
    ellipse = next(f for f in first_doc["features"] if f["properties"].get("shape") == "ellipse")
    assert ellipse["geometry"]["type"] == "Polygon"
    assert ellipse["properties"]["classification"] == {"name": "inflammation", "color": [31, 119, 180]}
    tumor = next(f for f in first_doc["features"] if f["id"] == TUMOR_UUID)
    assert tumor["properties"]["metadata"] == {"reader": "ZW", "comment": "invasive front"}
    assert tumor["properties"]["color"] == [255, 0, 0]

    resp = c.post(api(other_slide_id, "/import"), data=first.get_data(), content_type="application/json")
    assert resp.status_code == 201 and resp.json["renamed"] == []        # ids kept: no collision on this slide
    second_doc = json.loads(c.get(api(other_slide_id, "/export.geojson")).get_data())
    assert second_doc == first_doc

    # Importing the same file again as copies: every id collides, so each gets a new UUID (and is reported).
    again = c.post(api(other_slide_id, "/import?as_copies=1"), data=first.get_data(),
                   content_type="application/json")
    assert again.status_code == 201 and len(again.json["renamed"]) == 6
    assert {r["from"] for r in again.json["renamed"]} == {f["id"] for f in first_doc["features"]}
    third = json.loads(c.get(api(other_slide_id, "/export.geojson")).get_data())
    assert len(third["features"]) == 12 and len({f["id"] for f in third["features"]}) == 12


def test_single_feature_and_bare_list_bodies(client_for, slide_id, world):
    c = client_for("pathologist")
    feature = {"type": "Feature", "geometry": square(10, 10), "properties": {"objectType": "annotation"}}
    assert c.post(api(slide_id, "/import"), json=feature).json["imported"] == 1
    assert c.post(api(slide_id, "/import?as_copies=1"), json=[feature, feature]).json["imported"] == 2
    assert count_annotations(world, slide_id) == 3


def test_invalid_file_lists_every_offender_and_imports_nothing(client_for, slide_id, world):
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]}
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "ok-1", "geometry": square(0, 0), "properties": {}},
        {"type": "Feature", "id": "bowtie", "geometry": bowtie, "properties": {}},
        {"type": "Feature", "id": "ok-2", "geometry": square(500, 500), "properties": {}},
        {"type": "Feature", "id": "far-away", "geometry": square(20_000, 100), "properties": {}},
    ]}
    c = client_for("pathologist")
    resp = c.post(api(slide_id, "/import"), json=doc)
    assert resp.status_code == 422
    error = resp.json["error"]
    assert error["code"] == "invalid_features" and "nothing was imported" in error["message"]
    offenders = error["details"]["features"]
    assert [(o["index"], o["id"]) for o in offenders] == [(1, "bowtie"), (3, "far-away")]
    assert "self-intersecting" in offenders[0]["reason"]
    assert "outside the slide" in offenders[1]["reason"]
    assert count_annotations(world, slide_id) == 0


@pytest.mark.parametrize("body, code", [
    (b"{\"type\": \"FeatureCollection\", \"features\": [", "invalid_json"),
    (b"\xff\xfe not utf-8", "invalid_json"),
    (b"{\"type\": \"Point\", \"coordinates\": [1, 2]}", "invalid_geojson"),
    (b"42", "invalid_geojson"),
])
def test_unreadable_files_are_refused(client_for, slide_id, world, body, code):
    resp = client_for("pathologist").post(api(slide_id, "/import"), data=body, content_type="application/json")
    assert resp.status_code == 422 and resp.json["error"]["code"] == code, resp.json
    assert count_annotations(world, slide_id) == 0


def test_feature_level_errors_name_the_feature(client_for, slide_id):
    doc = [{"type": "Feature", "id": "a", "geometry": square(0, 0), "properties": {"objectType": "tma_core"}},
           {"type": "Feature", "id": "b", "geometry": square(0, 0),
            "properties": {"classification": {"name": "X", "color": [300, 0, 0]}}},
           {"type": "Feature", "id": "c", "geometry": square(0, 0), "properties": {"measurements": "lots"}},
           {"type": "Polygon", "coordinates": []},
           {"type": "Feature", "id": "e", "geometry": square(0, 0), "properties": {"score": float("nan")}}]
    resp = client_for("pathologist").post(api(slide_id, "/import"), data=json.dumps(doc),  # NaN as a bare token
                                          content_type="application/json")
    assert resp.status_code == 422
    reasons = {o["index"]: o["reason"] for o in resp.json["error"]["details"]["features"]}
    assert "objectType" in reasons[0] and "colour" in reasons[1] and "measurements" in reasons[2]
    assert "Feature" in reasons[3] and "NaN" in reasons[4]


def test_import_size_limits(client_for, slide_id, monkeypatch, world):
    from pathology_hub.domain import annotations as service
    c = client_for("pathologist")
    feature = {"type": "Feature", "geometry": square(10, 10), "properties": {}}
    from pathology_hub.domain.annotations import import_export
    monkeypatch.setattr(import_export, "MAX_IMPORT_FEATURES", 2)
    resp = c.post(api(slide_id, "/import"), json=[feature] * 3)
    assert resp.status_code == 422 and resp.json["error"]["code"] == "import_too_large"
    monkeypatch.setattr(service, "MAX_IMPORT_BYTES", 50)
    resp = c.post(api(slide_id, "/import"), json=[feature])
    assert resp.status_code == 422 and resp.json["error"]["code"] == "import_too_large"
    assert count_annotations(world, slide_id) == 0


def test_only_pathologists_who_see_the_case_import(client_for, slide_id, report_signed):
    feature = {"type": "Feature", "geometry": square(10, 10), "properties": {}}
    report_signed(True)
    assert client_for("tech").post(api(slide_id, "/import"), json=feature).status_code == 403
    assert client_for("tech2").post(api(slide_id, "/import"), json=feature).status_code == 404
    assert client_for("admin").post(api(slide_id, "/import"), json=feature).status_code == 404
    assert client_for("tech").get(api(slide_id, "/export.geojson")).status_code == 200
