"""The application on the S3 backend (Ceph RGW on loopback): upload, inspection from a
downloaded, verified copy of the original, pyramid packs read by ranged GETs."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.fixtures.uploads import tus_upload
from tests.storage.conftest import s3_url  # noqa: F401 - starts scripts/s3-server (fails under CI if it cannot)

# The object-storage backend under the app; the database is incidental: once (SQLite pass).
pytestmark = pytest.mark.single_pass


@pytest.fixture
def settings(settings, s3_url):  # noqa: F811 - the app fixture picks this up
    base, query = s3_url.split("?", 1)
    settings.storage_url = base.rsplit("/", 1)[0] + f"/app-{uuid.uuid4().hex[:8]}?{query}"
    return settings


def test_ingest_tile_and_serve_from_s3(client_for, db, synthetic_slide, demo_case_id):
    from pathology_hub import runtime
    assert runtime.store().description.startswith("s3://") or "s3" in type(runtime.store()).__name__.lower()
    tech = client_for("tech")
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    db.expire_all()
    slide = db.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY, slide.reject_message
    info = tech.get(f"/api/v1/slides/{slide.id}").json
    tile = tech.get(info["dzi_url"].replace("slide.dzi", "slide_files/12/3_2.jpeg"))
    assert tile.status_code == 200 and tile.data[:2] == b"\xff\xd8"
    assert tech.get(f"/api/v1/slides/{slide.id}/thumbnail.jpg").status_code == 200
    assert tech.delete(f"/api/v1/slides/{slide.id}").status_code == 204  # a withdrawal: kept for the retention period
    assert list(runtime.store().list(f"pyramids/{slide.uid}/"))
    import datetime as dt

    from pathology_hub.domain import slide_facts
    from pathology_hub.models import utcnow
    assert slide_facts.purge_withdrawn(db, runtime.store(), now=utcnow() + dt.timedelta(days=31)) == [slide.id]
    db.commit()
    assert not list(runtime.store().list(f"pyramids/{slide.uid}/"))
    assert not runtime.store().exists(slide.original.storage_key)
