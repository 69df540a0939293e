"""10,000 polygons of 100 vertices on one slide: a viewport answers in under 200 ms."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import select

from pathology_hub.domain import annotations as service
from pathology_hub.models import Slide, User

from .conftest import api, make_slide

pytestmark = pytest.mark.usefixtures("consultation_grant")

GRID, CELL, VERTICES = 100, 1000, 100


def circle(cx: float, cy: float, r: float) -> dict:
    ring = [[round(cx + r * math.cos(2 * math.pi * i / (VERTICES - 1)), 2),
             round(cy + r * math.sin(2 * math.pi * i / (VERTICES - 1)), 2)] for i in range(VERTICES - 1)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def test_viewport_query_with_10000_polygons(client_for, world, record_property):
    sid = make_slide(world, width=GRID * CELL, height=GRID * CELL)
    slide = world.get(Slide, sid)
    user = world.scalar(select(User).where(User.username == "pathologist"))
    features = [{"type": "Feature", "geometry": circle(i * CELL + CELL / 2, j * CELL + CELL / 2, 400),
                 "properties": {"classification": {"name": "tumour"}}}
                for i in range(GRID) for j in range(GRID)]
    started = time.perf_counter()
    result = service.import_features(world, user, slide, features)
    bulk_seconds = time.perf_counter() - started
    assert result.imported == GRID * GRID

    c = client_for("pathologist")
    viewport = api(sid) + f"?bbox=0,0,{10 * CELL},{10 * CELL}"       # 10 × 10 cells
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        resp = c.get(viewport)
        timings.append(time.perf_counter() - started)
        assert resp.status_code == 200
    assert len(resp.json["features"]) == 100
    assert all(len(f["geometry"]["coordinates"][0]) == VERTICES for f in resp.json["features"])

    started = time.perf_counter()
    full = c.get(api(sid))
    full_seconds = time.perf_counter() - started
    assert full.status_code == 200 and full.get_data().count(b'"type":"Feature"') == GRID * GRID

    report = {"bulk_import_s": round(bulk_seconds, 2), "viewport_ms": [round(t * 1000, 1) for t in timings],
              "full_list_s": round(full_seconds, 2), "full_list_mb": round(len(full.get_data()) / 2**20, 1)}
    record_property("annotation_speed", report)
    print("annotation speed:", report)
    assert min(timings) < 0.2, report
