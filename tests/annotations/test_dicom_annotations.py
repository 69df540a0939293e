"""DICOM Microscopy Bulk Simple Annotations (Supplement 222): export, lossless round trip into a
fresh slide, stable instances for DICOMweb, and clear refusals of bad files."""

from __future__ import annotations

import io
import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from sqlalchemy import select

from pathology_hub.domain import unit_of_work
from pathology_hub.domain.annotations import actions
from pathology_hub.domain.dicom import annotations as dicom_ann
from pathology_hub.domain.dicom import annotations_service, uids
from pathology_hub.models import Slide, User
from pathology_hub.tiling.geometry import Geometry

from .conftest import HEIGHT, WIDTH, api, square
from .test_qupath_exchange import QUPATH_FILE

pytestmark = pytest.mark.usefixtures("consultation_grant")

ANN_CLASS = "1.2.840.10008.5.1.4.1.1.91.1"


def _draw(world, client_for, slide_id):
    """Annotations of two authors with every geometry type, measurements (incl. null), comments."""
    c = client_for("pathologist")
    assert c.post(api(slide_id, "/import"), json=QUPATH_FILE).status_code == 201
    line = {"geometry": {"type": "LineString", "coordinates": [[1, 2], [3.000001, 4.123456789012]]}, "class": "other"}
    assert c.post(api(slide_id), json=line).status_code == 201
    point = {"geometry": {"type": "Point", "coordinates": [5000.5, 4000]}, "properties": {"comment": "核分裂象"}}
    assert c.post(api(slide_id), json=point).status_code == 201
    e = client_for("expert")
    ellipse = {"geometry": {"type": "Polygon", "coordinates": [[[7000.5, 100.25], [7100, 120], [7050, 300.75],
                                                                [7000.5, 100.25]]]},
               "properties": {"class": "tumour", "shape": "ellipse", "name": "E1", "comment": "second reader"}}
    assert e.post(api(slide_id), json=ellipse).status_code == 201
    return c


def _features(client, slide_id):
    out = {}
    for f in client.get(api(slide_id)).json["features"]:
        p = f["properties"]
        out[p["uuid"]] = {"geometry": f["geometry"], "class": p["class"], "author": p["author"],
                          "author_name": p["author_name"], "measurements": p["measurements"], "comment": p["comment"],
                          "name": p["name"], "object_type": p["object_type"], "locked": p["locked"],
                          "shape": p.get("shape"), "color": p["color"]}
    return out


def test_round_trip_into_a_fresh_slide_keeps_geometry_class_author_and_measurements(
        world, client_for, slide_id, other_slide_id):
    c = _draw(world, client_for, slide_id)
    resp = c.get(api(slide_id, "/export.dcm"))
    assert resp.status_code == 200 and resp.mimetype == "application/dicom"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = resp.get_data()
    ds = pydicom.dcmread(io.BytesIO(raw))
    slide = world.get(Slide, slide_id)
    # A standard reader sees a Supplement 222 instance that names the slide's full-resolution level.
    assert ds.SOPClassUID == ANN_CLASS and ds.Modality == "ANN" and ds.AnnotationCoordinateType == "2D"
    assert ds.StudyInstanceUID == uids.study_uid(slide.case.id, slide.case.created_at)
    assert ds.SeriesInstanceUID == uids.annotation_series_uid(slide.uid, slide.pyramid_version)
    level0 = Geometry(WIDTH, HEIGHT).max_level
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == \
        uids.level_instance_uid(slide.uid, slide.pyramid_version, level0)
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == uids.slide_series_uid(slide.uid, slide.pyramid_version)
    assert ds.PatientID == slide.case.patient_pseudo_id and "PatientName" in ds
    assert slide.case.patient_name is None or slide.case.patient_name not in raw.decode("latin-1")
    ann = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(ds)
    groups = ann.get_annotation_groups()
    assert {g.label for g in groups} >= {"Tumor", "tumour", "other", "unclassified"}
    tumor = next(g for g in groups if g.label == "Tumor")
    names, values, _units = tumor.get_measurements()
    assert {n.meaning for n in names} == {"Area µm^2", "Num Detections"}
    assert np.float32(10000.0) in values
    # Into a fresh slide: refused until confirmed, then identical in everything but the database ids.
    refused = c.post(api(other_slide_id, "/import.dcm"), data=raw, content_type="application/dicom")
    assert refused.status_code == 422 and refused.json["error"]["code"] == "dicom_other_slide"
    resp = c.post(api(other_slide_id, "/import.dcm?other_slide=1"), data=raw, content_type="application/dicom")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["created"] == 7 and resp.json["other_slide"] is True
    assert resp.json["authors_kept"] == 7 and resp.json["authors_claimed"] == 0
    first, second = _features(c, slide_id), _features(c, other_slide_id)
    assert len(first) == 7 and second == first
    expert = world.scalar(select(User).where(User.username == "expert"))
    assert {f["author"] for f in second.values()} == {expert.id, world.scalar(
        select(User.id).where(User.username == "pathologist"))}
    # The QuPath export of both slides holds the same features (the order follows the DICOM groups).
    def exported(sid):
        return sorted(json.loads(c.get(api(sid, "/export.geojson")).get_data())["features"], key=lambda f: f["id"])
    assert exported(other_slide_id) == exported(slide_id)
    # Importing the file back into its own slide changes nothing (idempotent, no confirmation needed).
    again = c.post(api(slide_id, "/import.dcm"), data=raw, content_type="application/dicom")
    assert again.status_code == 201 and again.json["unchanged"] == 7 and again.json["created"] == 0


def test_same_state_same_instance_and_a_change_gives_a_new_one(app, world, client_for, slide_id):
    c = _draw(world, client_for, slide_id)
    first = c.get(api(slide_id, "/export.dcm")).get_data()
    assert c.get(api(slide_id, "/export.dcm")).get_data() == first
    user = world.scalar(select(User).where(User.username == "pathologist"))
    slide = world.get(Slide, slide_id)
    with app.test_request_context():
        listed = actions.dicom_instances(user, slide, secret=app.config["SECRET_KEY"])
        unit_of_work.discard()
    assert len(listed) == 1 and isinstance(listed[0], Dataset)
    uid = pydicom.dcmread(io.BytesIO(first)).SOPInstanceUID
    assert listed[0].SOPInstanceUID == uid
    assert dicom_ann.to_bytes(listed[0]) == first
    feature = next(iter(c.get(api(slide_id)).json["features"]))
    assert feature["properties"]["author"] == user.id
    assert c.patch(api(slide_id, f"/{feature['id']}"),
                   json={"version": feature["properties"]["version"], "comment": "changed"}).status_code == 200
    changed = pydicom.dcmread(io.BytesIO(c.get(api(slide_id, "/export.dcm")).get_data()))
    assert changed.SOPInstanceUID != uid and changed.SeriesInstanceUID == listed[0].SeriesInstanceUID


def test_no_annotations_no_instance_and_hidden_before_signing(app, world, slide_id, report_signed):
    slide = world.get(Slide, slide_id)
    pathologist = world.scalar(select(User).where(User.username == "pathologist"))
    tech = world.scalar(select(User).where(User.username == "tech"))
    with app.test_request_context():
        secret = app.config["SECRET_KEY"]
        assert annotations_service.annotation_instances(world, pathologist, slide, secret=secret) == []
        actions.create(pathologist, slide, {"geometry": square(10, 10)})
        assert len(annotations_service.annotation_instances(world, pathologist, slide, secret=secret)) == 1
        report_signed(False)
        assert annotations_service.annotation_instances(world, tech, slide, secret=secret) == []
        report_signed(True)
        assert len(annotations_service.annotation_instances(world, tech, slide, secret=secret)) == 1


def test_a_changed_file_cannot_name_another_author(world, client_for, slide_id, other_slide_id):
    _draw(world, client_for, slide_id)
    raw = client_for("pathologist").get(api(slide_id, "/export.dcm")).get_data()
    ds = pydicom.dcmread(io.BytesIO(raw))
    group = ds.AnnotationGroupSequence[0]
    coords = np.frombuffer(group.DoublePointCoordinatesData, np.float64).copy()
    coords[0] += 1.0            # one vertex moved by someone else's tool
    group.DoublePointCoordinatesData = coords.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf)
    e = client_for("expert")
    resp = e.post(api(other_slide_id, "/import.dcm?other_slide=1"), data=buf.getvalue(),
                  content_type="application/dicom")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["authors_kept"] == 1 and resp.json["authors_claimed"] == 6   # the expert's own one is kept
    expert = world.scalar(select(User).where(User.username == "expert"))
    features = _features(e, other_slide_id)
    assert {f["author"] for f in features.values()} == {expert.id}
    exported = json.loads(e.get(api(other_slide_id, "/export.geojson")).get_data())
    claimed = {f["properties"].get("dicomAuthor") for f in exported["features"]}
    assert any(c and "(pathologist)" in c for c in claimed)


def _foreign_file(slide: Slide) -> bytes:
    """A file another program wrote: no private block, RECTANGLE and ELLIPSE groups, float32 values."""
    image = Dataset()
    image.SOPClassUID, image.SOPInstanceUID = dicom_ann.WSI_SOP_CLASS_UID, hd.UID()
    image.StudyInstanceUID, image.SeriesInstanceUID = hd.UID(), uids.slide_series_uid(slide.uid, 0)
    image.FrameOfReferenceUID, image.Modality = hd.UID(), "SM"
    image.PatientID, image.PatientName, image.PatientBirthDate, image.PatientSex = "X", "X^", "", ""
    image.AccessionNumber, image.StudyID, image.StudyDate, image.StudyTime = "A", "A", "20260101", "000000"
    image.ReferringPhysicianName, image.ContainerIdentifier = "", "S"
    specimen = Dataset()
    specimen.SpecimenIdentifier, specimen.SpecimenUID = "S", hd.UID()
    image.SpecimenDescriptionSequence = [specimen]
    rect = hd.ann.AnnotationGroup(
        number=1, uid=hd.UID(), label="lymphocytes", annotated_property_category=codes.SCT.Tissue,
        annotated_property_type=codes.SCT.Tissue, graphic_type="RECTANGLE",
        graphic_data=[np.array([[10, 10], [110, 10], [110, 60], [10, 60]], np.float32)], algorithm_type="MANUAL",
        measurements=[hd.ann.Measurements(name=codes.SCT.Area, values=np.array([5000.0]), unit=codes.UCUM.SquareMicrometer)])
    ellipse = hd.ann.AnnotationGroup(
        number=2, uid=hd.UID(), label="nucleus", annotated_property_category=codes.SCT.Tissue,
        annotated_property_type=codes.SCT.Tissue, graphic_type="ELLIPSE",
        graphic_data=[np.array([[200, 300], [400, 300], [300, 250], [300, 350]], np.float32)], algorithm_type="MANUAL")
    ann = hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[image], annotation_coordinate_type="2D", annotation_groups=[rect, ellipse],
        series_instance_uid=hd.UID(), series_number=1, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="Other", manufacturer_model_name="Other", software_versions="1", device_serial_number="1")
    buf = io.BytesIO()
    ann.save_as(buf)
    return buf.getvalue()


def test_a_file_from_other_software_imports_with_its_classes_and_measurements(world, client_for, slide_id):
    c = client_for("pathologist")
    raw = _foreign_file(world.get(Slide, slide_id))
    resp = c.post(api(slide_id, "/import.dcm"), data=raw, content_type="application/dicom")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert resp.json["created"] == 2 and resp.json["other_slide"] is False
    features = {f["class"]: f for f in _features(c, slide_id).values()}
    rect, ellipse = features["lymphocytes"], features["nucleus"]
    assert rect["shape"] == "rectangle" and rect["geometry"]["coordinates"] == \
        [[[10.0, 10.0], [110.0, 10.0], [110.0, 60.0], [10.0, 60.0], [10.0, 10.0]]]
    assert rect["measurements"] == {"Area": 5000.0}
    assert ellipse["shape"] == "ellipse" and len(ellipse["geometry"]["coordinates"][0]) == dicom_ann.ELLIPSE_VERTICES + 1
    xs = [p[0] for p in ellipse["geometry"]["coordinates"][0]]
    ys = [p[1] for p in ellipse["geometry"]["coordinates"][0]]
    assert min(xs) == pytest.approx(200) and max(xs) == pytest.approx(400)
    assert min(ys) == pytest.approx(250) and max(ys) == pytest.approx(350)


def _ct_file() -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.2", hd.UID(), "CT"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("body, code", [
    (b"not a dicom file at all", "dicom_invalid"),
    (b"\0" * 128 + b"DICM" + b"\x02\x00\x10", "dicom_invalid"),
    ("ct", "dicom_wrong_sop_class"),
    ("truncated", "dicom_invalid_annotations"),
])
def test_bad_files_get_a_clear_translated_error(world, client_for, slide_id, body, code):
    c = client_for("pathologist")
    if body == "ct":
        body = _ct_file()
    elif body == "truncated":
        _draw(world, client_for, slide_id)
        whole = c.get(api(slide_id, "/export.dcm")).get_data()
        ds = pydicom.dcmread(io.BytesIO(whole))
        del ds.AnnotationGroupSequence[0].DoublePointCoordinatesData   # a group without its coordinates
        buf = io.BytesIO()
        ds.save_as(buf)
        body = buf.getvalue()
    for lang in ("en", "zh-CN"):
        resp = c.post(api(slide_id, "/import.dcm"), data=body, content_type="application/dicom",
                      headers={"Accept-Language": lang})
        assert resp.status_code == 422, resp.get_data(as_text=True)
        error = resp.json["error"]
        assert error["code"] == code and "Traceback" not in error["message"]
        if lang == "zh-CN":
            assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"]), error["message"]
        else:
            assert error["message"].isascii()


def test_too_large_file_is_refused_before_reading(world, client_for, slide_id, monkeypatch):
    from pathology_hub.domain import annotations as service
    from pathology_hub.domain.dicom import annotations_service as svc
    monkeypatch.setattr(service, "MAX_IMPORT_BYTES", 1000)
    monkeypatch.setattr(svc, "MAX_IMPORT_BYTES", 1000)
    resp = client_for("pathologist").post(api(slide_id, "/import.dcm"), data=b"\0" * 5000,
                                          content_type="application/dicom")
    assert resp.status_code == 422 and resp.json["error"]["code"] == "import_too_large"


def test_a_file_larger_than_an_ordinary_request_body_is_accepted(app, world, client_for, slide_id, monkeypatch):
    """The import route takes whole files (MAX_IMPORT_BYTES), not the 1 MiB of ordinary request bodies."""
    c = _draw(world, client_for, slide_id)
    raw = c.get(api(slide_id, "/export.dcm")).get_data()
    monkeypatch.setattr(app.config["SETTINGS"], "max_json_bytes", len(raw) // 2)
    resp = c.post(api(slide_id, "/import.dcm"), data=raw, content_type="application/dicom")
    assert resp.status_code == 201, resp.get_data(as_text=True)
