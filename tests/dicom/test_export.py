"""DICOM WSI export: OpenSlide 4 and wsidicom open the zip; patient identity follows the label rules."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pydicom
import pytest
from sqlalchemy import select


def _unzip(data: bytes, into) -> list:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(into)
        return sorted(into / n for n in zf.namelist())


def _put_label(settings, world, slide_id: int, name_text: str) -> None:
    """Give the slide label and macro images that show a patient's name (as a glass label does)."""
    from PIL import Image, ImageDraw

    import storage
    from pathology_hub.domain import slides as slide_service
    from pathology_hub.models import Slide
    import json
    slide = world.get(Slide, slide_id)
    store = storage.open_store(settings.storage_url)
    for name, size in (("label", (300, 200)), ("macro", (600, 240))):
        img = Image.new("RGB", size, "white")
        ImageDraw.Draw(img).text((10, 10), name_text, fill="black")
        buf = io.BytesIO()
        img.save(buf, "PNG")
        store.put_bytes(slide_service.associated_key(slide, name), buf.getvalue(), content_type="image/png")
    desc = json.loads(slide.description)
    desc["associated_images"] = ["label", "macro", "thumbnail"]
    # a vendor field that carried the name at scan time (ingest drops it; the export must not resurrect it)
    desc.setdefault("properties", {})["aperio.Filename"] = name_text
    slide.description = json.dumps(desc)
    world.commit()


@pytest.mark.slow
def test_export_opens_in_openslide_and_wsidicom_and_hides_identity(world, settings, ready_slide, demo_case_id,
                                                                   client_for, tmp_path):
    import openslide
    from wsidicom import WsiDicom

    from pathology_hub.models import AuditEvent, Case
    slide_id = ready_slide(demo_case_id)
    case = world.get(Case, demo_case_id)
    case.patient_name = "Zhang Sanfeng"
    world.commit()
    _put_label(settings, world, slide_id, "Zhang Sanfeng")

    # the uploading centre's technician may see the label: label and macro come along
    tech = client_for("tech")
    resp = tech.get(f"/api/v1/slides/{slide_id}/export/dicom.zip")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    files = _unzip(resp.data, tmp_path / "tech")
    datasets = [pydicom.dcmread(f) for f in files]
    kinds = sorted(str(ds.ImageType[2]) for ds in datasets)
    assert "LABEL" in kinds and "OVERVIEW" in kinds and kinds.count("VOLUME") >= 3
    for ds, f in zip(datasets, files):
        raw = f.read_bytes()
        assert b"Zhang" not in raw and b"Sanfeng" not in raw  # not in any tag
        assert str(ds.PatientID) == case.patient_pseudo_id and str(ds.PatientName) == case.patient_pseudo_id
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"

    level0 = next(f for f, ds in zip(files, datasets) if ds.ImageType[3] == "NONE" and ds.ImageType[2] == "VOLUME")
    with openslide.OpenSlide(str(level0)) as osr:
        assert osr.properties["openslide.vendor"] == "dicom"
        assert osr.dimensions == (int(datasets[files.index(level0)].TotalPixelMatrixColumns),
                                  int(datasets[files.index(level0)].TotalPixelMatrixRows))
        assert osr.level_count >= 3
        assert "label" in osr.associated_images
        os_region = np.asarray(osr.read_region((400, 300), 0, (500, 400)).convert("RGB"), dtype=np.int16)
    with WsiDicom.open(tmp_path / "tech") as wsi:
        ws_region = np.asarray(wsi.read_region((400, 300), 0, (500, 400)).convert("RGB"), dtype=np.int16)
        assert wsi.labels is not None
        assert float(wsi.levels[0].pixel_spacing.width) == pytest.approx(0.00025, rel=0.05)  # 0.25 µm/px
    assert os_region.std() > 5
    assert np.abs(os_region - ws_region).mean() < 2.0  # same pixels through both readers

    # a technician of another centre, not on the case, gets no such slide at all
    assert client_for("tech2").get(f"/api/v1/slides/{slide_id}/export/dicom.zip").status_code == 404
    world.expire_all()
    events = world.scalars(select(AuditEvent).where(AuditEvent.action == "slide.export_dicom")).all()
    assert len(events) == 1 and str(events[0].object_id) == str(slide_id)


def test_export_without_label_permission_leaves_label_and_macro_out(world, settings, ready_slide, demo_case_id,
                                                                    client_for, tmp_path, monkeypatch):
    from pathology_hub.domain import policy
    slide_id = ready_slide(demo_case_id)
    _put_label(settings, world, slide_id, "Zhang Sanfeng")
    # same viewer, label permission withdrawn: the rule the ingest applies to the label image
    monkeypatch.setitem(policy._RULES, "slide.view_label", lambda user, slide: False)
    resp = client_for("tech").get(f"/api/v1/slides/{slide_id}/export/dicom.zip")
    assert resp.status_code == 200
    files = _unzip(resp.data, tmp_path / "nolabel")
    kinds = {str(pydicom.dcmread(f, stop_before_pixels=True).ImageType[2]) for f in files}
    assert kinds == {"VOLUME"}


def test_vendor_fields_with_a_name_follow_the_label_rule(world, settings, ready_slide, demo_case_id, client_for,
                                                         monkeypatch):
    import json

    from pathology_hub.domain import policy
    from pathology_hub.models import Slide
    slide_id = ready_slide(demo_case_id)
    slide = world.get(Slide, slide_id)
    desc = json.loads(slide.description)
    desc.setdefault("properties", {}).update({"hamamatsu.Reference": "Zhang Sanfeng", "hamamatsu.SourceLens": "20"})
    slide.description = json.dumps(desc)
    world.commit()
    client = client_for("tech")
    props = client.get(f"/api/v1/slides/{slide_id}").get_json()["properties"]
    assert props["hamamatsu.Reference"] == "Zhang Sanfeng"  # the uploading centre may see the label
    monkeypatch.setitem(policy._RULES, "slide.view_label", lambda user, slide: False)
    props = client.get(f"/api/v1/slides/{slide_id}").get_json()["properties"]
    assert "hamamatsu.Reference" not in props and props["hamamatsu.SourceLens"] == "20"
