"""IIIF Image API 3.0 over HTTP: tiles are the Deep Zoom tiles' bytes, access is the tile policy,
errors are IIIF status codes with stable JSON codes in the reader's language, CORS only for listed
origins, and `iiif-validator` (a client nobody on this project wrote) passes at level 0."""

from __future__ import annotations

import io
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

def squares_tiff(path: Path) -> Path:
    """The IIIF validator's test image: 1000 x 1000, 10 x 10 squares of 100 px in its colours."""
    from iiif_validator.validator import ValidationInfo
    colours = ValidationInfo().colorInfo
    arr = np.zeros((1000, 1000, 3), np.uint8)
    for x in range(10):
        for y in range(10):
            arr[y * 100:(y + 1) * 100, x * 100:(x + 1) * 100] = colours[x][y]
    tifffile.imwrite(path, arr, tile=(256, 256), compression="jpeg", compressionargs={"level": 95},
                     photometric="rgb")
    return path


def _slide(world, slide_id):
    from pathology_hub.models import Slide
    return world.get(Slide, slide_id)


def test_tiles_are_the_deep_zoom_tiles_and_access_is_the_tile_policy(world, ready_slide, demo_case_id, client_for):
    slide_id = ready_slide(demo_case_id)
    tech = client_for("tech")
    info = tech.get(f"/iiif/3/{slide_id}/info.json")
    assert info.status_code == 200 and info.headers["Content-Type"].startswith("application/ld+json")
    doc = info.get_json()
    assert doc["id"].endswith(f"/iiif/3/{slide_id}") and doc["profile"] == "level0"
    size = doc["tiles"][0]["width"]
    dzi = tech.get(f"/api/v1/slides/{slide_id}").get_json()["dzi_url"]
    base, token = dzi.split("?")
    max_level = (max(doc["width"], doc["height"]) - 1).bit_length()   # Deep Zoom's finest level
    # full resolution, first tile and the bottom-right edge tile; one tile at scale 2
    last_col, last_row = (doc["width"] - 1) // size, (doc["height"] - 1) // size
    w, h = doc["width"] - last_col * size, doc["height"] - last_row * size
    cases = [(f"0,0,{size},{size}", f"{size},", max_level, 0, 0),
             (f"{last_col * size},{last_row * size},{w},{h}", f"{w},", max_level, last_col, last_row),
             (f"0,0,{2 * size},{2 * size}", f"{size},", max_level - 1, 0, 0)]
    for region, sz, level, col, row in cases:
        iiif_tile = tech.get(f"/iiif/3/{slide_id}/{region}/{sz}/0/default.jpg")
        assert iiif_tile.status_code == 200 and iiif_tile.mimetype == "image/jpeg", (region, iiif_tile.data[:200])
        dz = tech.get(base.replace("slide.dzi", f"slide_files/{level}/{col}_{row}.jpeg") + "?" + token)
        assert iiif_tile.data == dz.data, region   # the stored bytes: no re-encoding
    # the whole image at max is a composed level no wider than maxWidth
    whole = tech.get(f"/iiif/3/{slide_id}/full/max/0/default.jpg")
    with Image.open(io.BytesIO(whole.data)) as img:
        assert img.size == (doc["maxWidth"], doc["maxHeight"])
    # another centre's technician: the slide does not exist for them; nobody signed in: 401
    assert client_for("tech2").get(f"/iiif/3/{slide_id}/info.json").status_code == 404
    assert client_for().get(f"/iiif/3/{slide_id}/info.json").status_code == 401


@pytest.mark.parametrize("path, status, code", [
    ("0,0,256,256/256,/90/default.jpg", 501, "iiif_not_supported"),
    ("0,0,256,256/256,/0/default.png", 501, "iiif_not_supported"),
    ("0,0,256,256/full/0/default.jpg", 400, "iiif_bad_request"),
    ("99999,0,256,256/max/0/default.jpg", 400, "iiif_bad_request"),
])
def test_errors_are_iiif_status_codes_with_stable_codes_in_the_readers_language(
        world, ready_slide, demo_case_id, client_for, path, status, code):
    slide_id = ready_slide(demo_case_id)
    tech = client_for("tech")
    zh = tech.get(f"/iiif/3/{slide_id}/{path}", headers={"Accept-Language": "zh-CN"})
    en = tech.get(f"/iiif/3/{slide_id}/{path}", headers={"Accept-Language": "en"})
    assert (zh.status_code, en.status_code) == (status, status)
    assert zh.get_json()["error"]["code"] == en.get_json()["error"]["code"] == code
    assert re.search(r"[\u4e00-\u9fff]", zh.get_json()["error"]["message"])
    assert not re.search(r"[\u4e00-\u9fff]", en.get_json()["error"]["message"])


def test_cors_only_for_listed_origins(world, settings, ready_slide, demo_case_id, client_for):
    slide_id = ready_slide(demo_case_id)
    tech = client_for("tech")
    url = f"/iiif/3/{slide_id}/info.json"
    assert "Access-Control-Allow-Origin" not in tech.get(url, headers={"Origin": "https://viewer.example.org"}).headers
    settings.cors_allowed_origins = ("https://viewer.example.org",)
    try:
        ok = tech.get(url, headers={"Origin": "https://viewer.example.org"})
        assert ok.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"
        assert ok.headers["Access-Control-Allow-Credentials"] == "true" and "Origin" in ok.headers["Vary"]
        other = tech.get(url, headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in other.headers
        pre = client_for().http.options(url, headers={"Origin": "https://viewer.example.org",
                                                      "Access-Control-Request-Method": "GET",
                                                      "Access-Control-Request-Headers": "Authorization"})
        assert pre.status_code == 204 and "GET" in pre.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
        # the same allow-list opens DICOMweb to the viewer
        qido = tech.get("/dicomweb/studies", headers={"Origin": "https://viewer.example.org"})
        assert qido.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    finally:
        settings.cors_allowed_origins = ()


class _Bearer(urllib.request.BaseHandler):
    """Adds the API token to every request the validator makes (it has no option for a header)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def http_request(self, req):
        req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        return req


@pytest.mark.slow
def test_iiif_validator_passes_level_0(world, ready_slide, demo_case_id, live_server, tmp_path):
    from iiif_validator.validator import ImageAPI, TestSuite, ValidationInfo
    from sqlalchemy import select

    from pathology_hub.domain import accounts
    from pathology_hub.models import User
    slide_id = ready_slide(demo_case_id, squares_tiff(tmp_path / "squares.tiff"))
    token = accounts.create_api_token(world, world.scalar(select(User).where(User.username == "tech")), "iiif")
    world.commit()
    server = live_server.removeprefix("http://")
    names = [n for n, t in TestSuite(ValidationInfo()).list_tests("3.0").items() if t["level"] == 0]
    assert {"info_json", "id_basic", "id_squares", "size_nofull"} <= set(names)
    previous = urllib.request._opener
    urllib.request.install_opener(urllib.request.build_opener(_Bearer(token)))
    failures = {}
    try:
        for name in names:
            result = ImageAPI(str(slide_id), server, "iiif/3", "http", "", "3.0", debug=False)
            TestSuite(ValidationInfo()).run_test(name, result)
            if result.exception is not None:
                e = result.exception
                failures[name] = (e.type, e.got, e.expected, e.message, result.urls)
    finally:
        urllib.request.install_opener(previous)
    assert not failures, failures
