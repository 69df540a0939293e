"""Issue 16 (lower): tiles and the descriptor of a deleted slide answer 404 with a JSON error code,
never 500, through the WSGI fast path (valid token) and through the Flask endpoint alike."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide
from tests.ingest.conftest import tus_upload


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("small") / "small.svs", 800, 600, mpp=0.5, seed=5)


@pytest.fixture
def tiled(client_for, world, small_slide, demo_case_id):
    tech = client_for("tech")
    assert tus_upload(tech, small_slide, demo_case_id).status_code == 201
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    return tech, info


def _urls(info):
    tile = info["dzi_url"].replace("slide.dzi", "slide_files/10/1_1.jpeg")
    return {"tile with token (fast path)": tile, "tile without token (Flask)": tile.split("?", 1)[0],
            "dzi with token": info["dzi_url"], "dzi without token": info["dzi_url"].split("?", 1)[0]}


def _assert_404(client, urls):
    for name, url in urls.items():
        resp = client.get(url)
        assert resp.status_code == 404, (name, resp.status_code, resp.get_data(as_text=True)[:200])
        assert resp.get_json()["error"]["code"] == "not_found", name


def test_deleted_slide_through_the_api(tiled, flask_tile_calls):
    tech, info = tiled
    urls = _urls(info)
    assert tech.get(urls["tile with token (fast path)"]).status_code == 200 and flask_tile_calls == []
    assert tech.delete(f"/api/v1/slides/{info['id']}").status_code == 204
    _assert_404(tech, urls)
    assert flask_tile_calls  # the fast path stepped aside to Flask, which answered the 404


def test_deleted_by_another_process_with_a_reader_still_cached(tiled, world, monkeypatch):
    """Another web process deleted it: this one still holds the pyramid reader (and open pack files)."""
    from pathology_hub.domain import slide_facts
    from pathology_hub.models import User
    from pathology_hub.web import tile_fastpath
    tech, info = tiled
    urls = _urls(info)
    assert tech.get(urls["tile with token (fast path)"]).status_code == 200  # reader cached here
    slide = world.scalars(select(Slide)).one()
    slide_facts.withdraw(world, world.scalar(select(User).where(User.username == "tech")), slide,
                         retention_days=30)  # the domain call, as another process would: this one's cache is untouched
    world.commit()
    monkeypatch.setattr(tile_fastpath, "READER_RECHECK_SECONDS", 0.0)  # the recheck interval has passed
    _assert_404(tech, urls)


def test_pyramid_gone_but_token_valid_never_renders_a_deleted_slide(tiled, world, flask_tile_calls):
    """Token valid, pyramid objects removed, original removed: no on-demand rendering, a 404."""
    from pathology_hub import runtime
    from pathology_hub.web.tile_fastpath import forget_reader
    tech, info = tiled
    slide = world.scalars(select(Slide)).one()
    slide.deleted_at = slide.created_at
    world.commit()
    runtime.store().delete_prefix(f"pyramids/{slide.uid}/")
    forget_reader(slide.uid)
    _assert_404(tech, _urls(info))
