"""Demo data for the page sweep: one world in which every page has something to show.

Built once per module through the real services (consultation state machine, report signing,
tus upload with inspection and tiling, annotation API), so the pages render what users meet:
a consultation in every state, an escalation to a requested expert, a signed and amended report,
a rejected upload, a slide being processed, QC warnings, annotations of every kind and class.
A few states that only exist for a moment (``reported``) are written straight into the row.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from pathology_hub.models import (
    Case,
    Institution,
    Priority,
    Sex,
    Slide,
    SlideStatus,
    User,
)
from pathology_hub.models.consultations import Consultation, ConsultationState

PASSWORD = "demo-pass-2026"


@dataclass
class SweepWorld:
    """Ids the sweep builds its URLs from, and the user data the language check must not judge."""

    case_ids: dict[str, int] = field(default_factory=dict)        # case number -> id
    consultations: dict[str, int] = field(default_factory=dict)   # state (or label) -> id
    report_ids: dict[str, int] = field(default_factory=dict)      # "amended" / "signed" -> id
    verification_codes: dict[str, str] = field(default_factory=dict)  # "original" / "current" -> code
    user_data: list[str] = field(default_factory=list)


def _case(db, tech: User, clinician: User, number: str, history: str, **kw) -> Case:
    case = Case(institution_id=tech.institution_id, case_number=number, patient_pseudo_id=f"P-{number[-4:]}",
                sex=kw.pop("sex", Sex.FEMALE), age_years=kw.pop("age", 61), clinical_history=history,
                specimen_type=kw.pop("specimen_type", "Core biopsy 穿刺活检"),
                specimen_site=kw.pop("specimen_site", "Left breast 左乳"), priority=kw.pop("priority", Priority.ROUTINE),
                requesting_clinician_id=clinician.id, created_by_id=tech.id, **kw)
    db.add(case)
    db.flush()
    return case


def _ok(resp, status=200):
    assert resp.status_code == status, f"{resp.status_code}: {resp.get_data(as_text=True)[:400]}"
    return resp.get_json()


def build(db, client_for, slide_path: Path, junk_path: Path) -> SweepWorld:
    """Fill the (demo) database; ``client_for(username)`` gives a logged-in test client."""
    from pathology_hub.demo import ensure_demo_consultations, ensure_demo_data
    from pathology_hub.domain import consultations as svc
    from pathology_hub.domain import reports
    from tests.fixtures.uploads import tus_upload

    ensure_demo_data(db)
    db.commit()
    ensure_demo_consultations(db)  # triage, in_review, info_requested, escalated (+ expert's child), returned
    db.commit()
    out = SweepWorld()
    users = {u.username: u for u in db.scalars(select(User))}
    tech, clinician, patho, expert = users["tech"], users["clinician"], users["pathologist"], users["expert"]

    # --- the slide case: one real tiled slide (READY, with QC warnings), a rejected upload, one in process
    case = _case(db, tech, clinician, "SW-2026-0001", "乳腺肿块 2 cm。Breast lump, 2 cm, ultrasound BI-RADS 4.")
    db.commit()
    tc = client_for("tech")
    assert tus_upload(tc, slide_path, case.id, stain="H&E").status_code == 201
    db.expire_all()
    ready = db.scalars(select(Slide).where(Slide.case_id == case.id)).one()
    assert ready.status is SlideStatus.READY, ready.status
    c_main = svc.create(db, tech, case, {"question": "浸润性癌？Invasive carcinoma?"})
    svc.submit(db, tech, c_main, acknowledge_warnings=True)
    svc.assign(db, patho, c_main, patho.id)
    svc.accept(db, patho, c_main)
    db.commit()
    assert tus_upload(tc, junk_path, case.id, stain="Ki-67").status_code == 201
    db.expire_all()
    rejected = db.scalars(select(Slide).where(Slide.original_filename == junk_path.name)).one()
    assert rejected.status is SlideStatus.REJECTED, rejected.status
    quality = json.loads(ready.quality or "{}")
    quality["warnings"] = [
        {"code": "missing_mpp", "message": "The file records no pixel size.", "details": {}},
        {"code": "low_tissue", "message": "Only 3.0% of the slide appears to contain tissue.",
         "details": {"tissue_fraction": 0.03, "threshold": 0.05}},
        {"code": "blurry", "message": "The tissue looks out of focus.", "details": {"focus_score": 2.1, "threshold": 8}},
    ]
    ready.quality = json.dumps(quality)
    db.add(Slide(uid=uuid.uuid4().hex, case_id=case.id, label="A3", stain="PAS", status=SlideStatus.TILING,
                 original_filename="SW-A3-PAS.svs", created_by_id=tech.id))
    db.commit()
    out.case_ids[case.case_number] = case.id

    # annotations of every kind and class on the ready slide (as the pathologist, through the API)
    out.consultations["in_review_with_slide"] = c_main.id
    pc = client_for("pathologist")
    api = f"/api/v1/slides/{ready.id}/annotations"
    sq = [[[100, 100], [400, 100], [400, 300], [100, 300], [100, 100]]]
    shapes = [
        ({"type": "Polygon", "coordinates": sq}, "tumour", "rectangle"),
        ({"type": "Polygon", "coordinates": [[[500, 500], [700, 520], [650, 700], [500, 500]]]}, "stroma", None),
        ({"type": "Polygon", "coordinates": [[[800, 200], [900, 250], [800, 300], [700, 250], [800, 200]]]},
         "necrosis", "ellipse"),
        ({"type": "LineString", "coordinates": [[100, 800], [600, 900]]}, "inflammation", None),
        ({"type": "Point", "coordinates": [1000, 600]}, "mitosis", None),
        ({"type": "MultiPoint", "coordinates": [[1100, 700], [1150, 720]]}, "other", None),
        ({"type": "Polygon", "coordinates": [[[1200, 100], [1300, 100], [1300, 200], [1200, 100]]]}, None, None),
    ]
    for geometry, klass, shape in shapes:
        body = {"geometry": geometry, "class": klass, "shape": shape, "name": f"区域 {klass or 'x'}",
                "comment": "需复核 re-check"}
        _ok(pc.post(api, json=body), 201)

    # --- consultations in the remaining states, on cases without slides (the demo seed path)
    def seeded(number: str, question: str) -> Consultation:
        k = _case(db, tech, clinician, number, question, priority=Priority.URGENT)
        c = svc.create(db, tech, k, {"question": question})
        return c

    draft = seeded("SW-2026-0002", "甲状腺结节：乳头状癌？Thyroid nodule: papillary carcinoma?")
    out.consultations["draft"] = draft.id
    assigned = seeded("SW-2026-0003", "肝穿刺：肝细胞癌？Liver biopsy: hepatocellular carcinoma?")
    svc.submit(db, tech, assigned, skip_slide_check_for_demo_seed=True)
    svc.assign(db, patho, assigned, patho.id)
    out.consultations["assigned"] = assigned.id
    cancelled = seeded("SW-2026-0004", "宫颈活检：CIN 分级？Cervical biopsy: CIN grade?")
    svc.submit(db, tech, cancelled, skip_slide_check_for_demo_seed=True)
    svc.cancel(db, tech, cancelled, "标本已送其他医院。Specimen sent to another hospital.")
    out.consultations["cancelled"] = cancelled.id
    to_expert = seeded("SW-2026-0008", "软组织肿瘤：肉瘤？Soft tissue mass: sarcoma?")
    svc.submit(db, tech, to_expert, skip_slide_check_for_demo_seed=True)
    svc.assign(db, patho, to_expert, patho.id)
    svc.accept(db, patho, to_expert)
    child = svc.escalate(db, patho, to_expert, "梭形细胞肿瘤，需专家会诊。Spindle cell tumour; expert opinion needed.",
                         expert_id=expert.id)  # history: assigned, reason "requested expert"
    out.consultations["escalated_to_expert"] = to_expert.id
    out.consultations["assigned_to_requested_expert"] = child.id
    reported = seeded("SW-2026-0005", "前列腺穿刺：Gleason 评分？Prostate biopsy: Gleason score?")
    svc.submit(db, tech, reported, skip_slide_check_for_demo_seed=True)
    svc.assign(db, patho, reported, patho.id)
    svc.accept(db, patho, reported)
    reported.state = ConsultationState.REPORTED  # transient in real life (sign -> reported -> returned at once)
    out.consultations["reported"] = reported.id
    db.commit()

    # amended, then acknowledged: signed, amended (a corrected diagnosis), the clinician acknowledges v2
    amended = seeded("SW-2026-0007", "胃活检：印戒细胞癌？Gastric biopsy: signet ring cell carcinoma?")
    svc.submit(db, tech, amended, skip_slide_check_for_demo_seed=True)
    svc.assign(db, patho, amended, patho.id)
    svc.accept(db, patho, amended)
    report = reports.create(db, patho, amended)
    v = reports.update_draft(db, patho, report, {
        "specimen": "胃活检 Gastric biopsy", "microscopic_description": "印戒样细胞散在。",
        "diagnosis": "印戒细胞癌。Signet ring cell carcinoma.", "diagnosis_code": "8010/3",
        "answer_to_question": "是。Yes."}, revision=report.versions[0].revision)
    reports.sign(db, patho, report, password=PASSWORD, revision=v.revision)
    db.commit()
    out.verification_codes["superseded"] = reports.current(report).verification_code
    v2 = reports.new_version(db, patho, report, "amendment", "诊断更正：免疫组化支持。Corrected after IHC.")
    v2 = reports.update_draft(db, patho, report, {"diagnosis": "低分化腺癌伴印戒细胞。Poorly differentiated "
                                                  "adenocarcinoma with signet ring cells.", "diagnosis_code": "8140/3"},
                              revision=v2.revision)
    reports.sign(db, patho, report, password=PASSWORD, revision=v2.revision)
    db.commit()
    svc.acknowledge(db, clinician, amended, reports.current(report).number)
    db.commit()
    out.consultations["amended_acknowledged"] = amended.id
    out.report_ids["amended"] = report.id
    out.verification_codes["current"] = reports.current(report).verification_code

    # the demo seed's consultations by state (their ids), and its escalation child (requested expert)
    for c in db.scalars(select(Consultation).order_by(Consultation.id)):
        key = c.state.value if c.parent_id is None else f"{c.state.value}_child"
        out.consultations.setdefault(key, c.id)
    for k in db.scalars(select(Case)):
        out.case_ids.setdefault(k.case_number, k.id)
    out.user_data = user_data(db)
    return out


def user_data(db) -> list[str]:
    """Every text a person typed (or a file carried): the language check leaves these alone."""
    from pathology_hub.models import Annotation
    from pathology_hub.models.consultations import ConsultationEvent
    from pathology_hub.models.reports import ReportVersion
    texts: set[str] = set()

    def add(*values):
        for value in values:
            if isinstance(value, str) and value.strip():
                texts.add(value.strip())
                texts.update(line.strip() for line in value.splitlines() if line.strip())

    for i in db.scalars(select(Institution)):
        add(i.name, i.code)
    for u in db.scalars(select(User)):
        add(u.full_name, u.username, getattr(u, "email", None))
    for k in db.scalars(select(Case)):
        add(k.case_number, k.patient_pseudo_id, k.clinical_history, k.specimen_type, k.specimen_site,
            getattr(k, "patient_name", None))
    for s in db.scalars(select(Slide)):
        add(s.label, s.stain, s.block_label, s.original_filename, s.withdraw_reason)
    for c in db.scalars(select(Consultation)):
        add(c.question, c.preliminary_opinion, c.cancel_reason, c.follow_up_advice, getattr(c, "info_request", None))
    # Only what a person typed into a transition; the system's own notes ("auto", "requested expert",
    # "v2 (amendment)") are interface text and must be translated.
    typed = {"request_info", "answer_info", "decline", "escalate", "cancel", "return_result", "reassign"}
    for e in db.scalars(select(ConsultationEvent).where(ConsultationEvent.transition.in_(typed))):
        add(e.comment, e.reason)
    for v in db.scalars(select(ReportVersion)):
        add(*(getattr(v, name, None) for name in ("specimen", "gross_description", "microscopic_description",
                                                   "diagnosis", "comment", "recommendations", "answer_to_question",
                                                   "reason", "verification_code")))
    from pathology_hub.models.reports import ReportSignature
    for sig in db.scalars(select(ReportSignature)):  # the signed statement, shown as it was signed
        add(sig.meaning, sig.full_name, sig.institution)
    for a in db.scalars(select(Annotation)):
        add(a.name, a.comment)
    return sorted(texts, key=len, reverse=True)
