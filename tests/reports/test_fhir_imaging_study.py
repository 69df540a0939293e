"""FHIR: the DiagnosticReport points to the case's ImagingStudy (study UID, one SM series per slide,
the DICOMweb Endpoint), and an amendment is ``amended`` with the version it replaces linked by a URL
that answers with that version. References are followed through the API, shapes validated."""

from __future__ import annotations

import datetime as dt
import io

import pydicom
import pytest

from pathology_hub import runtime
from pathology_hub.domain.dicom import uids
from pathology_hub.models import Case, Slide
from pathology_hub.reporting.fhir import (REPLACES_EXTENSION, imaging_study, validate_diagnostic_report,
                                          validate_endpoint, validate_imaging_study)

from .conftest import ok, save, sign, signed_report


def _path(url: str) -> str:
    base = runtime.settings().base_url
    assert url.startswith(base + "/"), url
    return url[len(base):]


def test_report_references_an_imaging_study_that_resolves(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    fhir = ok(p.get(f"/api/v1/reports/{report['id']}/fhir"))
    assert validate_diagnostic_report(fhir) == [] and fhir["status"] == "final" and "extension" not in fhir
    case = db.get(Case, scenario.case_id)
    slide = db.get(Slide, scenario.slide_id)
    study_uid = uids.study_uid(case.id, case.created_at)
    ref = fhir["imagingStudy"][0]
    assert ref["type"] == "ImagingStudy" and ref["identifier"]["value"] == f"urn:oid:{study_uid}"
    resp = p.get(_path(ref["reference"]))
    assert resp.status_code == 200 and resp.mimetype == "application/fhir+json"
    study = resp.json
    assert validate_imaging_study(study) == []
    assert study["resourceType"] == "ImagingStudy" and study["status"] == "available"
    assert {"use": "official", "system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"} in study["identifier"]
    assert study["subject"]["identifier"]["value"] == case.patient_pseudo_id
    assert case.patient_name is None or case.patient_name not in resp.get_data(as_text=True)
    assert [s["uid"] for s in study["series"]] == [uids.slide_series_uid(slide.uid, slide.pyramid_version)]
    assert study["series"][0]["modality"]["code"] == "SM" and study["numberOfSeries"] == 1
    endpoint = study["contained"][0]
    assert study["endpoint"] == [{"reference": "#dicomweb", "display": "DICOMweb (WADO-RS)"}]
    assert endpoint["resourceType"] == "Endpoint" and endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert endpoint["address"] == runtime.settings().base_url + "/dicomweb"
    assert validate_endpoint(endpoint) == []
    # The same authorisation as the report: another centre does not see it, nor does an anonymous client.
    assert client_for("tech2").get(_path(ref["reference"])).status_code == 404
    assert client_for(None).get(_path(ref["reference"])).status_code == 401
    assert client_for("clinician").get(_path(ref["reference"])).status_code == 200


def test_a_slide_with_annotations_adds_its_annotation_series(client_for, scenario, db):
    p = client_for("pathologist")
    line = {"geometry": {"type": "LineString", "coordinates": [[10, 10], [200, 40]]}}
    assert p.post(f"/api/v1/slides/{scenario.slide_id}/annotations", json=line).status_code == 201
    report = signed_report(client_for, scenario)
    dcm = p.get(f"/api/v1/slides/{scenario.slide_id}/annotations/export.dcm")
    assert dcm.status_code == 200
    exported = pydicom.dcmread(io.BytesIO(dcm.get_data()))
    study = ok(p.get(f"/api/v1/reports/{report['id']}/fhir/ImagingStudy"))
    assert validate_imaging_study(study) == []
    sm, ann = study["series"]
    assert sm["modality"]["code"] == "SM" and ann["modality"]["code"] == "ANN"
    assert ann["uid"] == exported.SeriesInstanceUID and ann["instance"][0]["uid"] == exported.SOPInstanceUID
    assert ann["instance"][0]["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.91.1"
    assert [m["code"] for m in study["modality"]] == ["SM", "ANN"] and study["numberOfSeries"] == 2


def test_amendment_is_amended_and_links_the_version_it_replaces(client_for, scenario, db):
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions", json={"kind": "amendment", "reason": "regrade"}),
               201)
    sign(p, save(p, draft, {"diagnosis": "Invasive ductal carcinoma, grade 3"}))
    amended = ok(p.get(f"/api/v1/reports/{report['id']}/fhir"))
    assert amended["status"] == "amended" and amended["meta"]["versionId"] == "2"
    assert validate_diagnostic_report(amended) == []
    [ext] = amended["extension"]
    assert ext["url"] == REPLACES_EXTENSION and ext["valueReference"]["type"] == "DiagnosticReport"
    previous = ok(p.get(_path(ext["valueReference"]["reference"])))
    assert previous["meta"]["versionId"] == "1" and previous["status"] == "final" and previous["id"] == amended["id"]
    assert "extension" not in previous and validate_diagnostic_report(previous) == []
    assert previous["imagingStudy"] == amended["imagingStudy"]
    assert p.get(f"/api/v1/reports/{report['id']}/fhir/_history/9").status_code == 404
    # An addendum on top is "appended" and points to the amendment (addendumOf).
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions", json={"kind": "addendum", "reason": "IHC"}), 201)
    sign(p, save(p, draft, {"comment": "Ki-67 30%"}))
    appended = ok(p.get(f"/api/v1/reports/{report['id']}/fhir"))
    assert appended["status"] == "appended"
    assert appended["extension"][0]["url"].endswith("diagnosticReport-addendumOf")
    assert appended["extension"][0]["valueReference"]["reference"].endswith("/fhir/_history/2")


@pytest.mark.no_database
def test_validators_catch_broken_shapes():
    study = imaging_study(resource_id="case-1", study_uid="2.25.1", patient_id="P-1", case_number="C-1",
                          started=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                          series=[{"uid": "2.25.2", "number": 1, "description": "A1 H&E",
                                   "instances": [{"uid": "2.25.3", "number": 1,
                                                  "sop_class": "1.2.840.10008.5.1.4.1.1.77.1.6"}]}],
                          dicomweb_url="https://hub.example.org/dicomweb")
    assert validate_imaging_study(study) == []
    broken = dict(study, status="done", series=[{"uid": "not-a-uid", "number": 1}], endpoint=[{"reference": "#x"}],
                  numberOfSeries=3)
    del broken["subject"]
    problems = " | ".join(validate_imaging_study(broken))
    for expected in ("status", "subject is required", "series[0].uid", "series[0].modality",
                     "numberOfSeries", "#x does not resolve"):
        assert expected in problems, problems
    assert validate_endpoint({"resourceType": "Endpoint", "status": "active"}) != []


def test_openapi_describes_the_new_routes(client_for):
    paths = client_for().get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/reports/{report_id}/fhir/ImagingStudy", "/api/v1/reports/{report_id}/fhir/_history/{number}",
                 "/api/v1/slides/{slide_id}/annotations/export.dcm", "/api/v1/slides/{slide_id}/annotations/import.dcm"):
        assert path in paths, path
        assert all(op.get("summary") for op in paths[path].values())
