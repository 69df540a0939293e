"""The per-process cache of serialised annotations never serves a stale list."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from pathology_hub.domain import annotation_cache
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
