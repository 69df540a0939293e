"""`flask storage verify` over real stored slides, and a storage outage seen through the web layer."""

from __future__ import annotations

import os

from sqlalchemy import select

from pathology_hub.models import StoredOriginal
from tests.fixtures.uploads import tus_upload


def test_storage_verify_reports_missing_and_corrupted(app, client_for, world, synthetic_slide, demo_case_id):
    from pathology_hub import runtime
    assert tus_upload(client_for("tech"), synthetic_slide, demo_case_id).status_code == 201
    runner = app.test_cli_runner()
    clean = runner.invoke(args=["storage", "verify"])
    assert clean.exit_code == 0, clean.output
    assert "0 missing, 0 corrupted" in clean.output

    original = world.scalars(select(StoredOriginal)).one()
    path = runtime.store().local_path(original.storage_key)
    with open(path, "r+b") as fh:  # one flipped byte in the original
        fh.seek(os.path.getsize(path) // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    bad = runner.invoke(args=["storage", "verify", "--prefix", "originals/"])
    assert bad.exit_code == 1 and "CORRUPTED" in bad.output and original.storage_key in bad.output

    os.unlink(path)
    gone = runner.invoke(args=["storage", "verify", "--prefix", "originals/"])
    assert gone.exit_code == 1 and "MISSING" in gone.output


def test_storage_outage_answers_503_and_keeps_data(app, client_for, world, synthetic_slide, demo_case_id, monkeypatch):
    from pathology_hub import runtime
    from pathology_hub.web import tile_fastpath
    from storage.errors import StorageUnavailable
    tech = client_for("tech")
    tus_upload(tech, synthetic_slide, demo_case_id)
    info = tech.get(f"/api/v1/cases/{demo_case_id}/slides").json["slides"][0]
    tile_url = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg")
    real = runtime.store()

    class Down:
        def __getattr__(self, name):
            def fail(*a, **kw):
                raise StorageUnavailable("gateway unreachable")
            return fail
    tile_fastpath._readers.clear()
    monkeypatch.setattr(runtime, "store", lambda: Down())
    resp = tech.get(tile_url)
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "storage_unavailable" and "retry" in resp.json["error"]["message"]
    monkeypatch.setattr(runtime, "store", lambda: real)
    tile_fastpath._readers.clear()
    assert tech.get(tile_url).status_code == 200
