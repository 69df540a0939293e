"""The per-process cache of serialised annotations never serves a stale list."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from pathology_hub.domain.annotations import cache as annotation_cache
from pathology_hub.models import User

from .conftest import api, square

pytestmark = pytest.mark.usefixtures("consultation_grant")


def _listed(client, slide_id, query: str = "") -> dict:
    resp = client.get(api(slide_id) + query)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {f["properties"]["uuid"]: f for f in resp.json["features"]}


def _create(client, slide_id, geometry, **props) -> dict:
    resp = client.post(api(slide_id), json={"type": "Feature", "geometry": geometry, "properties": props})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.json


def test_list_follows_create_edit_delete_import_and_rename(client_for, slide_id, world):
    c = client_for("pathologist")
    first = _create(c, slide_id, square(10, 10), comment="one")
    assert [f["properties"]["comment"] for f in _listed(c, slide_id).values()] == ["one"]
    assert [f["properties"]["comment"] for f in _listed(c, slide_id).values()] == ["one"]  # from the cache

    second = _create(c, slide_id, square(500, 500), comment="two")
    assert sorted(f["properties"]["comment"] for f in _listed(c, slide_id).values()) == ["one", "two"]

    resp = c.patch(api(slide_id, f"/{first['id']}"), json={"version": 1, "comment": "edited"})
    assert resp.status_code == 200
    assert _listed(c, slide_id)[first["properties"]["uuid"]]["properties"]["comment"] == "edited"

    assert c.delete(api(slide_id, f"/{second['id']}")).status_code in (200, 204)
    assert list(_listed(c, slide_id)) == [first["properties"]["uuid"]]

    imported = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": square(900, 900), "properties": {"name": "imported"}}]}
    assert c.post(api(slide_id, "/import"), json=imported).status_code == 201
    assert "imported" in {f["properties"]["name"] for f in _listed(c, slide_id).values()}

    # The author's display name is spliced per request: a rename shows at once.
    world.execute(update(User).where(User.username == "pathologist").values(full_name="Renamed Pathologist"))
    world.commit()
    assert {f["properties"]["author_name"] for f in _listed(c, slide_id).values()} == {"Renamed Pathologist"}

    # Viewport and class queries use the same cache and still filter.
    assert list(_listed(c, slide_id, "?bbox=0,0,200,200")) == [first["properties"]["uuid"]]


def test_cached_list_equals_a_fresh_one_and_the_single_feature(client_for, slide_id):
    c = client_for("pathologist")
    created = [_create(c, slide_id, square(300 * i, 50), comment=f"c{i} 中文 <b>") for i in range(5)]
    annotation_cache.clear()
    cold = c.get(api(slide_id)).get_data(as_text=True)
    warm = c.get(api(slide_id)).get_data(as_text=True)
    assert cold == warm
    listed = {f["id"]: f for f in c.get(api(slide_id)).json["features"]}
    for feature in created:  # what POST answered (one feature serialised without the cache)
        assert listed[feature["id"]] == feature


def test_stored_list_text_gives_the_same_bytes_as_serialising_the_row(client_for, slide_id, world):
    """``list_text`` is written by create, import and edits; a list spliced from it must be
    byte-identical to one serialised from the row (as for rows from before migration 0006)."""
    from sqlalchemy import select

    from pathology_hub.models import Annotation

    c = client_for("pathologist")
    a = _create(c, slide_id, square(10, 10), comment="一 <i>", **{"class": "tumour"})
    b = _create(c, slide_id, {"type": "LineString", "coordinates": [[5, 5], [400.5, 70.25]]}, name="ruler")
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "0f7e4b0e-8d0c-4c36-9d0f-2f7c8d1e4a11", "geometry": square(900, 900),
         "properties": {"objectType": "annotation", "name": "imp", "classification": {"name": "stroma"},
                        "measurements": {"Area µm^2": 12.5, "n": 3}}}]}
    assert c.post(api(slide_id, "/import"), json=doc).status_code == 201
    assert c.patch(api(slide_id, f"/{a['id']}"), json={"version": 1, "comment": "edited 二"}).status_code == 200
    assert c.put(api(slide_id, f"/{b['id']}"), json={"version": 1, "geometry": square(50, 60),
                                                     "properties": {"class": "necrosis"}}).status_code == 200
    world.expire_all()
    rows = world.scalars(select(Annotation).where(Annotation.slide_id == slide_id)).all()
    assert len(rows) == 3 and all(r.list_text for r in rows)

    annotation_cache.clear()
    spliced = c.get(api(slide_id)).get_data()
    world.execute(update(Annotation).values(list_text=None))
    world.commit()
    annotation_cache.clear()
    serialised = c.get(api(slide_id)).get_data()
    assert spliced == serialised
    # An edit of a row without stored text stores it again.
    assert c.patch(api(slide_id, f"/{a['id']}"), json={"version": 2, "comment": "third"}).status_code == 200
    world.expire_all()
    assert world.get(Annotation, a["id"]).list_text is not None
    assert _listed(c, slide_id)[a["properties"]["uuid"]]["properties"]["comment"] == "third"


def test_only_rows_not_yet_serialised_in_their_version_are_serialised(client_for, slide_id, monkeypatch):
    from pathology_hub.domain.annotations import queries as service  # list_collection_text calls _list_feature

    c = client_for("pathologist")
    made = [_create(c, slide_id, square(60 * i, 60 * i)) for i in range(8)]
    calls: list[int] = []
    real = service._list_feature
    monkeypatch.setattr(service, "_list_feature", lambda r, frame: calls.append(r.id) or real(r, frame))
    annotation_cache.clear()

    # A cold viewport strip serialises the rows it answers with, not the whole slide.
    strip = _listed(c, slide_id, "?bbox=0,0,130,130")
    assert len(strip) == 3 and sorted(calls) == sorted(f["id"] for f in strip.values())
    calls.clear()
    assert len(_listed(c, slide_id)) == 8 and len(calls) == 5   # the other five
    calls.clear()
    assert len(_listed(c, slide_id)) == 8 and calls == []      # all cached

    # After an edit only the edited row is serialised again; the list shows the new version.
    edited = made[4]
    assert c.patch(api(slide_id, f"/{edited['id']}"), json={"version": 1, "comment": "new"}).status_code == 200
    listed = _listed(c, slide_id)
    assert calls == [edited["id"]]
    assert listed[edited["properties"]["uuid"]]["properties"]["comment"] == "new"
    assert listed[edited["properties"]["uuid"]]["properties"]["version"] == 2
    calls.clear()
    assert c.delete(api(slide_id, f"/{made[0]['id']}")).status_code in (200, 204)
    assert len(_listed(c, slide_id)) == 7 and calls == []
