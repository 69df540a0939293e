"""Slides visible before their upload ends (#21): the uploader sends the coarse levels first.

Real path end to end: the product client (HubUploader, tus, the preview POST) against the app on
a socket, through a TCP proxy that cuts the connection halfway through the original.  After the
cut the slide is openable at low magnification (and only there); a second run resumes the same
upload and the full-resolution pyramid replaces the preview.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus, Upload, UploadState, User
from pathology_hub.upload_client import HubUploader, UploadError
from tests.uploads.test_upload_client import FaultyProxy


@pytest.fixture(scope="module")
def big_slide(tmp_path_factory) -> Path:
    """2400 x 1800: its 1/16 level is 150 x 113, so the preview has real levels (and the test stays quick)."""
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("preview") / "cut-me.svs", 2400, 1800, mpp=0.25,
                                 tissue_fraction=0.5, seed=11)


@pytest.fixture
def token(world) -> str:
    from pathology_hub.domain import accounts
    tech = world.scalar(select(User).where(User.username == "tech"))
    value = accounts.create_api_token(world, tech, "scanner")
    world.commit()
    return value


def _dzi_levels(client, url: str) -> tuple[int, int, int, int]:
    """(tile size, overlap, width, height) of a DZI document."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(client.get(url).data)
    size = root[0]
    return int(root.get("TileSize")), int(root.get("Overlap")), int(size.get("Width")), int(size.get("Height"))


@pytest.mark.slow
def test_upload_cut_after_preview_leaves_a_viewable_preview_and_resumes(
        app, world, live_server, client_for, token, big_slide, demo_case_id, tmp_path):
    from pathology_hub.tiling import Geometry
    parts = urlsplit(live_server)
    proxy = FaultyProxy((parts.hostname, parts.port))
    size = big_slide.stat().st_size
    state = tmp_path / "state.json"

    class CutAfterPreview(HubUploader):
        def send_preview(self, path, upload_url):
            sent = super().send_preview(path, upload_url)
            proxy.cut_after = proxy._position + size // 2  # the original dies halfway
            return sent

    first = CutAfterPreview(f"http://127.0.0.1:{proxy.port}", token, state, chunk_size=256 << 10,
                            retries=0, retry_delay=0)
    with pytest.raises(UploadError):
        first.send(big_slide, {"filename": big_slide.name, "case_id": str(demo_case_id)})
    assert first.last_preview is not None and first.last_preview["bytes"] < size // 4

    world.expire_all()
    upload = world.scalars(select(Upload)).one()
    assert upload.state is UploadState.RECEIVING
    slide = world.scalars(select(Slide)).one()
    assert slide.original_id is None and slide.preview_level is not None and slide.pyramid_version == 0

    # The pathologist opens it: low magnification works, finer levels are plainly not there.
    patho = client_for("tech")  # same centre; a consultant sees it the same way
    info = patho.get(f"/api/v1/slides/{slide.id}").json
    assert "preview" in info, info
    assert info["preview"] == {"max_level": slide.preview_level, "max_fraction": info["preview"]["max_fraction"]}
    tile_size, overlap, width, height = _dzi_levels(patho, info["dzi_url"])
    assert (width, height) == (2400, 1800)
    geom = Geometry(width, height, tile_size, overlap)
    assert geom.depth(slide.preview_level) == 4 and info["preview"]["max_fraction"] == 1 / 16
    coarse = patho.get(info["dzi_url"].replace("slide.dzi", f"slide_files/{slide.preview_level}/0_0.jpeg"))
    assert coarse.status_code == 200 and coarse.data[:2] == b"\xff\xd8"
    fine = patho.get(info["dzi_url"].replace("slide.dzi", f"slide_files/{geom.max_level}/0_0.jpeg"))
    assert fine.status_code == 404
    page = patho.get(f"/cases/{demo_case_id}/viewer").get_data(as_text=True)
    assert '"previewLevel": %d' % slide.preview_level in page or f'"previewLevel":{slide.preview_level}' in page
    case_page = patho.get(f"/cases/{demo_case_id}").get_data(as_text=True)
    assert "Preview" in case_page

    # The scanner's next run resumes the same upload (no second preview, nothing sent twice).
    second = HubUploader(f"http://127.0.0.1:{proxy.port}", token, state, chunk_size=256 << 10, retry_delay=0)
    url, _ = second.send(big_slide, {"filename": big_slide.name, "case_id": str(demo_case_id)})
    assert second.last_preview is None
    assert second.verdict(url, timeout=60).accepted
    proxy.close()

    world.expire_all()
    slide = world.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY, (slide.status, slide.reject_message)
    assert slide.original is not None and slide.preview_level is None and slide.pyramid_version == 1
    info = patho.get(f"/api/v1/slides/{slide.id}").json
    assert info["preview"] is None
    full = patho.get(info["dzi_url"].replace("slide.dzi", f"slide_files/{geom.max_level}/0_0.jpeg"))
    assert full.status_code == 200 and full.data[:2] == b"\xff\xd8"


def test_preview_is_checked_not_trusted(app, world, live_server, token, big_slide, demo_case_id, tmp_path, client_for):
    """Tiles that do not match the declared size, a foreign upload, or junk are refused with a code."""
    import requests
    from tusclient import client as tus_client

    from pathology_hub.upload_client.preview import build_preview
    headers = {"Authorization": f"Bearer {token}"}
    client = tus_client.TusClient(f"{live_server}/api/v1/uploads/", headers=headers)
    uploader = client.uploader(str(big_slide), metadata={"filename": big_slide.name, "case_id": str(demo_case_id)})
    url = uploader.create_url()
    preview = build_preview(big_slide)

    def post(body: bytes, **query) -> requests.Response:
        return requests.post(f"{url}/preview", params={**preview.query(), **query}, data=body, headers=headers,
                             timeout=30)
    wrong = post(preview.pack, width=preview.width * 2)
    assert wrong.status_code == 422 and wrong.json()["error"]["code"] == "preview_invalid"
    junk = post(b"\xff\xd8" + b"x" * (2 << 20))  # over the 1 MiB of ordinary bodies: still checked as a preview
    assert junk.status_code == 422 and junk.json()["error"]["code"] == "preview_invalid"
    bad_number = post(preview.pack, tile_size="abc")
    assert bad_number.status_code == 422
    other = requests.post(f"{url}/preview", params=preview.query(), data=preview.pack, timeout=30,
                          headers={"Authorization": "Bearer nope"})
    assert other.status_code in (401, 404)
    world.expire_all()
    assert world.scalars(select(Slide)).first() is None
    ok = post(preview.pack)
    assert ok.status_code == 201, ok.text
