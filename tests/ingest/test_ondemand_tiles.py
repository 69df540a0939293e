"""Tiles asked for before the pipeline stored them are rendered by a worker task, never in the web
process, and never from an original fetched whole for one tile."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.fixtures.uploads import tus_upload


class _StopAtPreview(Exception):
    pass


def _stop_at_preview(progress) -> None:
    if progress.phase == "preview":
        raise _StopAtPreview()


@pytest.fixture
def half_built(app, client_for, world, synthetic_slide, demo_case_id, monkeypatch):
    """A slide whose new pyramid version has only its coarse levels stored, as while tiling. (The
    synthetic slide is one block, which the pipeline stores in one pass, without a preview; it is
    built here as a slide of several blocks is.)"""
    from pathology_hub import runtime
    from pathology_hub.domain import slides as slide_service
    from pathology_hub.models import Slide, SlideStatus
    from pathology_hub.tiling import build_pyramid, pipeline

    monkeypatch.setattr(pipeline._Build, "_one_pass", lambda self: False)

    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    slide = world.scalar(select(Slide).where(Slide.case_id == demo_case_id))
    full_prefix = slide_service.pyramid_prefix(slide)
    slide.pyramid_version += 1
    slide.status = SlideStatus.TILING
    world.commit()
    with pytest.raises(_StopAtPreview):
        build_pyramid(str(synthetic_slide), runtime.store(), slide_service.pyramid_prefix(slide),
                      workers=1, progress=_stop_at_preview)
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    assert info["status"] == "tiling"
    return tech, slide, info, full_prefix


def _fine_tile_url(info: dict) -> str:
    return info["dzi_url"].replace("slide.dzi", "slide_files/12/2_1.jpeg")


def test_tile_ahead_of_the_pipeline_is_rendered_once_by_the_worker_task(half_built, monkeypatch):
    from pathology_hub import runtime
    from pathology_hub.domain import tile_render
    from pathology_hub.tiling import PyramidReader

    tech, slide, info, full_prefix = half_built
    calls: list[tuple] = []
    real = tile_render.render_into_store

    def counting(*args, **kwargs):
        calls.append(args[2:])
        return real(*args, **kwargs)
    monkeypatch.setattr(tile_render, "render_into_store", counting)

    first = tech.get(_fine_tile_url(info))
    assert first.status_code == 200 and first.data[:2] == b"\xff\xd8"
    assert len(calls) == 1, "the tile is rendered by the queued task"
    # byte-identical to the tile the finished pipeline stores at the same address
    assert first.data == PyramidReader(runtime.store(), full_prefix).tile(12, 2, 1)
    assert runtime.store().exists(tile_render.ondemand_key(slide.uid, slide.pyramid_version, 12, 2, 1))

    again = tech.get(_fine_tile_url(info))
    assert again.status_code == 200 and again.data == first.data
    assert len(calls) == 1, "a rendered tile is read from the store, not rendered again"


def test_web_layer_never_opens_an_original():
    """Native decoders only run on the worker side: the web package imports no tile renderer."""
    import pathology_hub.web.slides as slides
    assert not hasattr(slides, "render_tile")
    assert not hasattr(slides, "openable_path")


def test_without_a_local_original_the_viewer_is_told_to_retry(half_built, monkeypatch):
    """A remote store (no local path) and no copy in the worker cache: no download for one tile."""
    from pathology_hub import runtime
    from storage.local import LocalStore

    tech, slide, info, _ = half_built
    local = runtime.store()

    class RemoteLike(LocalStore):
        """The same objects, but without a local file path, as S3 behaves."""
        local_path = None
        streams = 0

        def open_stream(self, key, *a, **kw):
            RemoteLike.streams += 1
            return super().open_stream(key, *a, **kw)

    remote = RemoteLike(local.root)
    monkeypatch.setattr(runtime, "_store", remote)
    resp = tech.get(_fine_tile_url(info))
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "tile_not_ready"
    assert resp.headers["Retry-After"] == "2"
    assert RemoteLike.streams == 0, "no original is fetched for one tile"


def test_ready_slides_are_never_rendered_on_demand(app, world, client_for, synthetic_slide, demo_case_id):
    """Once a pyramid is complete a missing tile is outside it: the worker renders nothing."""
    from pathology_hub import runtime
    from pathology_hub.domain import tile_render
    from pathology_hub.models import Slide

    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    slide = world.scalar(select(Slide).where(Slide.case_id == demo_case_id))
    assert tile_render.render_into_store(world, runtime.store(), slide.uid, slide.pyramid_version,
                                         12, 2, 1) is False
