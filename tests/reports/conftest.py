"""Report fixtures: a consultation under review at DIST1 (assigned to ``pathologist``) on a case of
COMM1 with one real, tiled slide (a READY-slide copy, see tests/fixtures/slides.py), and helpers to write and sign its report through the API."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import select

from pathology_hub.models import Case, Slide, User
from pathology_hub.models.consultations import Consultation

PASSWORD = "demo-pass-2026"


@pytest.fixture(scope="session")
def report_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("rslide") / "report-he.svs", 1600, 1200, mpp=0.25,
                                 tissue_fraction=0.5, seed=11)


@pytest.fixture
def users(world):
    return {u.username: u for u in world.scalars(select(User))}


@dataclass
class Scenario:
    case_id: int
    consultation_id: int
    slide_id: int


def make_in_review(db, client_for, users, ready_slide, slide_path=None, *, number: str = "C-REP-1",
                   slide_facts: dict | None = None) -> Scenario:
    """``ready_slide``: the fixture of that name (the slide is already tiled, no upload).
    ``slide_facts``: stain/block set through the API before submission (PATCH /api/v1/slides/<id>)."""
    from pathology_hub.domain import consultations as svc
    tech = users["tech"]
    case = Case(institution_id=tech.institution_id, case_number=number, patient_pseudo_id="P-REP-1",
                clinical_history="Breast lump, 2 cm.", specimen_type="Core biopsy", specimen_site="Left breast",
                requesting_clinician_id=users["clinician"].id, created_by_id=tech.id)
    db.add(case)
    db.commit()
    ready_slide(case.id, slide_path)
    db.expire_all()
    slide = db.scalars(select(Slide).where(Slide.case_id == case.id)).one()
    if slide_facts:
        assert client_for("tech").patch(f"/api/v1/slides/{slide.id}", json=slide_facts).status_code == 200
        db.expire_all()
    c = svc.create(db, tech, case, {"question": "Benign or malignant?"})
    svc.submit(db, tech, c, acknowledge_warnings=True)
    svc.assign(db, users["pathologist"], c, users["pathologist"].id)
    svc.accept(db, users["pathologist"], c)
    db.commit()
    return Scenario(case.id, c.id, slide.id)


@pytest.fixture
def scenario(world, client_for, users, ready_slide, report_slide) -> Scenario:
    return make_in_review(world, client_for, users, ready_slide, report_slide)


def ok(resp, status: int = 200):
    assert resp.status_code == status, f"{resp.status_code}: {resp.get_data(as_text=True)[:500]}"
    return resp.json


DRAFT = {"specimen": "Left breast core biopsy, 3 cores", "gross_description": "Three cores, 1.2 cm in total.",
         "microscopic_description": "Infiltrating nests of atypical ductal cells with desmoplastic stroma.",
         "diagnosis": "Invasive ductal carcinoma, grade 2 / 浸润性导管癌，2级", "diagnosis_code": "8500/3",
         "comment": "ER/PR/HER2 to follow.", "recommendations": "Refer to the breast surgery clinic.",
         "answer_to_question": "Malignant."}


def start_report(client, consultation_id: int) -> dict:
    return ok(client.post(f"/api/v1/consultations/{consultation_id}/report", json={}), 201)


def save(client, report: dict, fields: dict, status: int = 200) -> dict:
    body = {"revision": report["current"]["revision"], **fields}
    return ok(client.put(f"/api/v1/reports/{report['id']}", json=body), status)


def sign(client, report: dict, password: str = PASSWORD, status: int = 200) -> dict:
    return ok(client.post(f"/api/v1/reports/{report['id']}/sign",
                          json={"password": password, "revision": report["current"]["revision"]}), status)


def signed_report(client_for, scenario: Scenario) -> dict:
    p = client_for("pathologist")
    report = start_report(p, scenario.consultation_id)
    report = save(p, report, DRAFT)
    return sign(p, report)


__all__ = ["Consultation", "DRAFT", "PASSWORD", "Scenario", "make_in_review", "ok", "save", "sign",
           "signed_report", "start_report"]
