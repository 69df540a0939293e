"""REST API for annotations: roles, versions, soft delete, filters, validation."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import select

from pathology_hub.models import Annotation, AuditEvent

from .conftest import api, square

pytestmark = pytest.mark.usefixtures("consultation_grant")


def create(client, slide_id, geometry=None, **props):
    body = {"type": "Feature", "geometry": geometry or square(1000, 1000),
            "properties": {"class": "tumour", **props}}
    resp = client.post(api(slide_id), json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json


def audit_actions(db):
    db.expire_all()
    return [e.action for e in db.scalars(select(AuditEvent).where(AuditEvent.action.like("annotation.%"))
                                         .order_by(AuditEvent.id))]


def test_pathologist_creates_and_edits_own_annotation(client_for, slide_id, world):
    c = client_for("pathologist")
    feature = create(c, slide_id, comment="suspicious gland", shape="rectangle")
    props = feature["properties"]
    assert feature["geometry"] == square(1000, 1000)
    assert props["class"] == "tumour" and props["color"] == "#d62728" and props["version"] == 1
    assert props["author_name"].startswith("张病理") and props["shape"] == "rectangle"
    # 100 × 100 px at 0.25 µm/px: 25 µm sides.
    assert props["area_um2"] == 625.0 and props["perimeter_um"] == 100.0 and props["length_um"] is None

    ann_id = feature["id"]
    resp = c.put(api(slide_id, f"/{ann_id}"), headers={"If-Match": '"1"'},
                 json={"geometry": square(2000, 2000, 200), "properties": {"class": "stroma", "comment": "re-drawn"}})
    assert resp.status_code == 200, resp.json
    assert resp.headers["ETag"] == '"2"'
    assert resp.json["properties"]["color"] == "#ff7f0e" and resp.json["properties"]["shape"] is None
    resp = c.patch(api(slide_id, f"/{ann_id}"), json={"version": 2, "comment": "only the comment"})
    assert resp.status_code == 200
    props = resp.json["properties"]
    assert (props["version"], props["comment"], props["class"]) == (3, "only the comment", "stroma")
    assert resp.json["geometry"] == square(2000, 2000, 200)
    assert audit_actions(world) == ["annotation.create", "annotation.update", "annotation.update"]


def test_other_pathologist_reads_but_cannot_change(client_for, slide_id):
    own = create(client_for("pathologist"), slide_id)
    expert = client_for("expert")
    listed = expert.get(api(slide_id)).json["features"]
    assert [f["id"] for f in listed] == [own["id"]]
    url = api(slide_id, f"/{own['id']}")
    assert expert.put(url, headers={"If-Match": '"1"'}, json={"geometry": square(0, 0)}).status_code == 403
    assert expert.patch(url, json={"version": 1, "comment": "mine now"}).status_code == 403
    assert expert.delete(url).status_code == 403
    # The expert's own annotation is theirs to edit.
    mine = create(expert, slide_id, geometry=square(5000, 5000))
    assert expert.patch(api(slide_id, f"/{mine['id']}"), json={"version": 1, "comment": "x"}).status_code == 200


def test_technician_and_clinician_see_annotations_only_once_signed(client_for, slide_id, report_signed):
    create(client_for("pathologist"), slide_id)
    for name in ("tech", "clinician"):
        c = client_for(name)
        resp = c.get(api(slide_id))
        assert resp.status_code == 403 and resp.json["error"]["code"] == "report_not_signed"
        assert c.get(api(slide_id, "/export.geojson")).status_code == 403
        assert c.post(api(slide_id), json={"geometry": square(0, 0)}).status_code == 403
    assert client_for("tech2").get(api(slide_id)).status_code == 404  # another centre: the slide is hidden
    report_signed(True)
    for name in ("tech", "clinician"):
        c = client_for(name)
        resp = c.get(api(slide_id))
        assert resp.status_code == 200 and len(resp.json["features"]) == 1
        assert c.post(api(slide_id), json={"geometry": square(0, 0)}).status_code == 403  # still read-only
    assert client_for("tech2").get(api(slide_id)).status_code == 404


def test_pathologist_without_access_to_the_case_gets_404(client_for, slide_id, consultation_grant):
    from pathology_hub.domain import policy
    policy._CASE_ACCESS_GRANTS.remove(consultation_grant)
    try:
        c = client_for("pathologist")
        assert c.get(api(slide_id)).status_code == 404
        assert c.post(api(slide_id), json={"geometry": square(0, 0)}).status_code == 404
    finally:
        policy.register_case_access(consultation_grant)


def test_same_version_twice_exactly_one_wins(client_for, slide_id, world):
    """Two writers based on version 1, racing in threads: one 200, one 409 carrying the current annotation."""
    ann = create(client_for("pathologist"), slide_id)
    url = api(slide_id, f"/{ann['id']}")
    clients = [client_for("pathologist"), client_for("pathologist")]
    barrier, results = threading.Barrier(2), {}

    def write(i):
        barrier.wait()
        results[i] = clients[i].patch(url, headers={"If-Match": '"1"'}, json={"comment": f"writer {i}"})
    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], [r.get_data(as_text=True) for r in results.values()]
    winner = next(r for r in results.values() if r.status_code == 200)
    loser = next(r for r in results.values() if r.status_code == 409)
    assert loser.json["error"]["code"] == "version_conflict"
    assert loser.json["current"]["properties"]["version"] == 2
    assert loser.json["current"]["properties"]["comment"] == winner.json["properties"]["comment"]
    # A stale version never overwrites, sequentially either.
    again = clients[0].put(url, json={"version": 1, "geometry": square(0, 0)})
    assert again.status_code == 409 and again.json["current"]["properties"]["version"] == 2
    world.expire_all()
    assert world.get(Annotation, ann["id"]).version == 2


def test_update_requires_a_version(client_for, slide_id):
    c = client_for("pathologist")
    ann = create(c, slide_id)
    resp = c.patch(api(slide_id, f"/{ann['id']}"), json={"comment": "no version"})
    assert resp.status_code == 428 and resp.json["error"]["code"] == "version_required"
    resp = c.patch(api(slide_id, f"/{ann['id']}"), headers={"If-Match": '"2"'}, json={"version": 1})
    assert resp.status_code == 422


def test_soft_delete_keeps_the_record(client_for, slide_id, world):
    c = client_for("pathologist")
    ann = create(c, slide_id)
    url = api(slide_id, f"/{ann['id']}")
    assert c.delete(url, headers={"If-Match": '"7"'}).status_code == 409
    assert c.delete(url, headers={"If-Match": '"1"'}).status_code == 204
    assert c.get(api(slide_id)).json["features"] == []
    world.expire_all()
    row = world.get(Annotation, ann["id"])
    assert row is not None and row.deleted_at is not None
    assert c.delete(url).status_code == 404
    assert c.patch(url, json={"version": 2, "comment": "x"}).status_code == 404
    assert audit_actions(world)[-1] == "annotation.delete"


def test_bbox_class_and_author_filters(client_for, slide_id, world):
    p, e = client_for("pathologist"), client_for("expert")
    a = create(p, slide_id, geometry=square(100, 100))
    b = create(p, slide_id, geometry=square(5000, 5000), **{"class": "necrosis"})
    c = create(e, slide_id, geometry={"type": "LineString", "coordinates": [[9000, 7000], [9400, 7300]]})

    def ids(query):
        resp = p.get(api(slide_id) + query)
        assert resp.status_code == 200, resp.json
        return [f["id"] for f in resp.json["features"]]
    assert ids("?bbox=0,0,1000,1000") == [a["id"]]
    assert ids("?bbox=150,150,5050,5050") == [a["id"], b["id"]]       # touching the box is enough
    assert ids("?bbox=8000,6000,10000,8000") == [c["id"]]
    assert ids("?bbox=2000,2000,3000,3000") == []
    assert ids("?class=necrosis") == [b["id"]]
    author = c["properties"]["author"]
    assert ids(f"?author={author}") == [c["id"]]
    line = p.get(api(slide_id) + "?bbox=8000,6000,10000,8000").json["features"][0]["properties"]
    assert line["length_um"] == 125.0 and line["area_um2"] is None   # 500 px line at 0.25 µm/px
    for bad in ("?bbox=1,2,3", "?bbox=5,5,1,1", "?bbox=a,b,c,d", "?author=me"):
        assert p.get(api(slide_id) + bad).status_code == 422


@pytest.mark.parametrize("geometry, reason", [
    ({"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]}, "self-intersecting"),
    (square(9950, 100), "outside the slide"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10]]]}, "closed"),
    ({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [0, 0]]]}, "at least 4"),
    ({"type": "Point", "coordinates": ["1", 2]}, "finite numbers"),
    ({"type": "GeometryCollection", "geometries": []}, "geometry must be one of"),
    (None, "geometry must be one of"),
])
def test_invalid_geometry_is_refused_with_the_reason(client_for, slide_id, geometry, reason):
    resp = client_for("pathologist").post(api(slide_id), json={"geometry": geometry, "class": "tumour"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_geometry"
    assert reason in resp.json["error"]["message"]


def test_unknown_class_bad_json_and_size_limits(client_for, slide_id, monkeypatch):
    c = client_for("pathologist")
    resp = c.post(api(slide_id), json={"geometry": square(0, 0), "class": "Tumor"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "unknown_class"
    assert "tumour" in resp.json["error"]["message"]
    resp = c.post(api(slide_id), data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_json"
    from pathology_hub.domain import annotations as service
    from pathology_hub.domain.annotations import geometry
    monkeypatch.setattr(geometry, "MAX_VERTICES", 10)
    many = {"type": "LineString", "coordinates": [[i, i] for i in range(11)]}
    resp = c.post(api(slide_id), json={"geometry": many})
    assert resp.status_code == 422 and "more than 10 vertices" in resp.json["error"]["message"]
    monkeypatch.setattr(service, "MAX_BODY_BYTES", 100)
    resp = c.post(api(slide_id), json={"geometry": square(0, 0), "comment": "x" * 200})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "body_too_large"


def test_comment_round_trips_byte_identical(client_for, slide_id, world):
    comment = "<img src=x onerror=alert(1)>\n  \"quoted\" & 中文 \u2028"
    c = client_for("pathologist")
    ann = create(c, slide_id, comment=comment)
    assert ann["properties"]["comment"] == comment
    assert c.get(api(slide_id)).json["features"][0]["properties"]["comment"] == comment
    exported = json.loads(c.get(api(slide_id, "/export.geojson")).get_data())
    assert exported["features"][0]["properties"]["metadata"]["comment"] == comment
    world.expire_all()
    assert world.get(Annotation, ann["id"]).comment.encode() == comment.encode()
    # The API answers JSON, never HTML: the browser escapes when it renders.
    assert c.get(api(slide_id)).mimetype == "application/geo+json"


def test_multipolygon_point_and_line(client_for, slide_id):
    c = client_for("pathologist")
    multi = {"type": "MultiPolygon", "coordinates": [square(0, 0)["coordinates"], square(200, 200)["coordinates"]]}
    f = create(c, slide_id, geometry=multi)
    assert f["geometry"] == multi and f["properties"]["area_um2"] == 1250.0
    p = create(c, slide_id, geometry={"type": "Point", "coordinates": [10.5, 20.25]}, **{"class": "mitosis"})
    assert p["properties"]["area_um2"] is None and p["geometry"]["coordinates"] == [10.5, 20.25]
    overlapping = {"type": "MultiPolygon", "coordinates": [square(0, 0)["coordinates"], square(50, 50)["coordinates"]]}
    assert c.post(api(slide_id), json={"geometry": overlapping}).status_code == 422


def test_unclassified_annotation_and_unknown_mpp(client_for, world):
    from .conftest import make_slide
    sid = make_slide(world, mpp=None)
    c = client_for("pathologist")
    resp = c.post(api(sid), json={"geometry": square(0, 0)})
    assert resp.status_code == 201
    props = resp.json["properties"]
    assert props["class"] is None and props["color"] is None
    assert props["area_um2"] is None and props["perimeter_um"] is None


def test_annotation_classes_default_and_override(client_for, tmp_path, monkeypatch):
    c = client_for("tech")
    classes = c.get("/api/v1/annotation-classes").json["classes"]
    assert classes[0] == {"name": "tumour", "color": "#d62728"}
    assert [k["name"] for k in classes] == ["tumour", "stroma", "necrosis", "inflammation", "mitosis", "other"]
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"classes": [{"name": "腺癌", "color": "#AA0000"}]}), encoding="utf-8")
    monkeypatch.setenv("ANNOTATION_CLASSES_FILE", str(path))
    assert c.get("/api/v1/annotation-classes").json["classes"] == [{"name": "腺癌", "color": "#aa0000"}]
    path.write_text("[{\"name\": \"x\"}]", encoding="utf-8")
    import os
    os.utime(path, (1, 1))
    resp = c.get("/api/v1/annotation-classes")
    assert resp.status_code == 500 and resp.json["error"]["code"] == "annotation_classes_misconfigured"
