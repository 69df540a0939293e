"""Every endpoint × every role, including cross-institution access.

The test fails when an endpoint exists that the matrix does not list, so each
new endpoint must state who may use it.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.models import Case, Institution, User

ROLES = ["anon", "tech", "tech2", "clinician", "pathologist", "expert", "admin"]

# (method, rule) -> expected status per role ("*" = every logged-in role not listed)
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/"): {"anon": 302, "*": 200},
    ("GET", "/login"): {"anon": 200, "*": 302},
    ("POST", "/login"): {"anon": 401, "*": 401},
    ("POST", "/logout"): {"anon": 302, "*": 302},
    ("GET", "/account/password"): {"anon": 302, "*": 200},
    ("POST", "/account/password"): {"anon": 302, "*": 401},
    ("POST", "/lang"): {"anon": 302, "*": 302},
    ("GET", "/cases/new"): {"anon": 302, "tech": 200, "tech2": 200, "*": 403},
    ("POST", "/cases/new"): {"anon": 302, "tech": 422, "tech2": 422, "*": 403},
    ("GET", "/cases/<int:case_id>"): {"anon": 302, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/admin/institutions"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/institutions"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/institutions/<int:institution_id>/active"): {"anon": 302, "admin": 302, "*": 403},
    ("POST", "/admin/institutions/<int:institution_id>/time_zone"): {"anon": 302, "admin": 302, "*": 403},
    ("POST", "/admin/institutions/<int:institution_id>/report-language"): {"anon": 302, "admin": 302, "*": 403},
    ("GET", "/admin/users"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/users"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/users/<int:user_id>/active"): {"anon": 302, "admin": 302, "*": 403},
    ("POST", "/admin/users/<int:user_id>/subspecialties"): {"anon": 302, "admin": 302, "*": 403},
    ("GET", "/admin/audit"): {"anon": 302, "admin": 200, "*": 403},
    ("GET", "/admin/audit.csv"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/audit/verify"): {"anon": 302, "admin": 302, "*": 403},
    ("GET", "/admin/lis"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/lis/institutions/<int:institution_id>/endpoint"): {"anon": 302, "admin": 302, "*": 403},
    ("POST", "/admin/lis/messages/<int:message_id>/resend"): {"anon": 302, "admin": 302, "*": 403},
    ("GET", "/api/v1/openapi.json"): {"anon": 200, "*": 200},
    ("GET", "/api/v1/me"): {"anon": 401, "*": 200},
    ("GET", "/api/v1/institutions"): {"anon": 401, "*": 200},
    ("POST", "/api/v1/institutions"): {"anon": 401, "admin": 422, "*": 403},
    ("GET", "/api/v1/users"): {"anon": 401, "admin": 200, "*": 403},
    ("POST", "/api/v1/users"): {"anon": 401, "admin": 422, "*": 403},
    ("PUT", "/api/v1/users/<int:user_id>/active"): {"anon": 401, "admin": 422, "*": 403},
    ("PUT", "/api/v1/users/<int:user_id>/subspecialties"): {"anon": 401, "admin": 422, "*": 403},
    ("GET", "/api/v1/cases"): {"anon": 401, "admin": 403, "*": 200},
    ("POST", "/api/v1/cases"): {"anon": 401, "tech": 422, "tech2": 422, "*": 403},
    ("GET", "/api/v1/cases/<int:case_id>"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("PATCH", "/api/v1/cases/<int:case_id>"): {"anon": 401, "tech": 422, "clinician": 403, "*": 404},
    ("GET", "/api/v1/cases/<int:case_id>/slides"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("DELETE", "/api/v1/slides/<int:slide_id>"): {"anon": 401, "tech": 204, "clinician": 403, "*": 404},
    # Withdrawal needs {"confirm": true} (422 without); editing with no stain field changes nothing (200).
    ("POST", "/api/v1/slides/<int:slide_id>/withdraw"): {"anon": 401, "tech": 422, "clinician": 403, "*": 404},
    ("PATCH", "/api/v1/slides/<int:slide_id>"): {"anon": 401, "tech": 200, "clinician": 403, "*": 404},
    ("POST", "/cases/<int:case_id>/slides/<int:slide_id>/withdraw"): {"anon": 302, "tech": 302, "clinician": 403,
                                                                     "*": 404},
    ("POST", "/cases/<int:case_id>/slides/<int:slide_id>/facts"): {"anon": 302, "tech": 302, "clinician": 403,
                                                                  "*": 404},
    # Retry: the matrix slide is ready, so whoever may retry gets 409 slide_not_failed (the admin too, who
    # cannot see the case); a case viewer who may not retry gets 403, everyone else 404.
    ("POST", "/api/v1/slides/<int:slide_id>/retry"): {"anon": 401, "tech": 409, "admin": 409, "clinician": 403,
                                                      "*": 404},
    ("POST", "/slides/<int:slide_id>/retry"): {"anon": 302, "tech": 302, "clinician": 302, "admin": 409, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>/thumbnail.jpg"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>/export/dicom.zip"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/iiif/3/<int:slide_id>"): {"anon": 401, "tech": 303, "clinician": 303, "*": 404},
    ("GET", "/iiif/3/<int:slide_id>/info.json"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/iiif/3/<int:slide_id>/<region>/<size>/<rotation>/<quality>.<fmt>"): {
        "anon": 401, "tech": 400, "clinician": 400, "*": 404},
    # DICOMweb: searches list only what the user may see (200, possibly empty); an unknown UID is 404
    ("GET", "/dicomweb/studies"): {"anon": 401, "*": 200},
    ("GET", "/dicomweb/series"): {"anon": 401, "*": 200},
    ("GET", "/dicomweb/studies/<study_uid>/series"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/instances"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/metadata"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/series/<series_uid>/instances"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/series/<series_uid>/metadata"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/metadata"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>"): {"anon": 401, "*": 404},
    ("GET", "/dicomweb/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/frames/<frame_list>"): {
        "anon": 401, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>/associated/<name>.png"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    # Annotations: technicians/clinicians only once the report is signed (403 before); pathologists of
    # other institutions do not see the COMM1 case without a consultation (404). The matrix cannot name an
    # annotation id, so its per-annotation rows only list the routes (tests/annotations covers who may edit).
    ("GET", "/api/v1/annotation-classes"): {"anon": 401, "*": 200},
    ("GET", "/api/v1/slides/<int:slide_id>/annotations"): {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("POST", "/api/v1/slides/<int:slide_id>/annotations"): {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("PUT", "/api/v1/slides/<int:slide_id>/annotations/<int:annotation_id>"): {"anon": 404, "*": 404},
    ("PATCH", "/api/v1/slides/<int:slide_id>/annotations/<int:annotation_id>"): {"anon": 404, "*": 404},
    ("DELETE", "/api/v1/slides/<int:slide_id>/annotations/<int:annotation_id>"): {"anon": 404, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>/annotations/export.geojson"):
        {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("POST", "/api/v1/slides/<int:slide_id>/annotations/import"): {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("GET", "/api/v1/slides/<int:slide_id>/annotations/export.dcm"):
        {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("POST", "/api/v1/slides/<int:slide_id>/annotations/import.dcm"):
        {"anon": 401, "tech": 403, "clinician": 403, "*": 404},
    ("GET", "/api/v1/tiles/<uid>/v<int:version>/slide.dzi"): {"anon": 404, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/api/v1/tiles/<uid>/v<int:version>/slide_files/<int:level>/<int:col>_<int:row>.jpeg"):
        {"anon": 404, "tech": 200, "clinician": 200, "*": 404},
    # a bright-field slide has no channel pyramids: nobody gets one (fluorescence channels: tests/ingest)
    ("GET", "/api/v1/tiles/<uid>/v<int:version>/c<int:channel>/slide.dzi"): {"*": 404},
    ("GET", "/api/v1/tiles/<uid>/v<int:version>/c<int:channel>/slide_files/<int:level>/<int:col>_<int:row>.jpeg"):
        {"*": 404},
    ("GET", "/cases/<int:case_id>/viewer"): {"anon": 302, "tech": 200, "clinician": 200, "*": 404},
    # tus: the protocol answers 412 without Tus-Resumable; who may upload is tested in tests/ingest.
    ("POST", "/api/v1/uploads/"): {"anon": 401, "*": 412},
    ("POST", "/api/v1/uploads/<upload_id>"): {"anon": 401, "*": 412},
    ("GET", "/api/v1/uploads/<upload_id>"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/uploads/<upload_id>/preview"): {"anon": 401, "*": 404},
    ("PATCH", "/api/v1/uploads/<upload_id>"): {"anon": 401, "*": 412},
    ("DELETE", "/api/v1/uploads/<upload_id>"): {"anon": 401, "*": 412},
    ("GET", "/api/v1/upload-status/<upload_id>"): {"anon": 401, "*": 404},
    # Consultations: <consultation_id> is a cancelled request on the COMM1 demo case (see ids), so every
    # transition is 409 for the centre that sees it and 404 for everyone else.
    ("GET", "/api/v1/cases/<int:case_id>/consultations"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("POST", "/api/v1/cases/<int:case_id>/consultations"): {"anon": 401, "tech": 422, "clinician": 422, "*": 404},
    ("GET", "/api/v1/consultations/<int:consultation_id>"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    **{("POST", f"/api/v1/consultations/<int:consultation_id>/{t}"): {"anon": 401, "tech": 409, "clinician": 409, "*": 404}
       for t in ("submit", "assign", "accept", "decline", "request-info", "answer-info", "escalate",
                 "return-result", "acknowledge", "cancel")},
    ("GET", "/api/v1/worklist"): {"anon": 401, "*": 200},
    ("GET", "/api/v1/turnaround"): {"anon": 401, "admin": 200, "*": 403},
    ("GET", "/api/v1/notifications"): {"anon": 401, "*": 200},
    ("POST", "/api/v1/notifications/read"): {"anon": 401, "*": 422},
    ("GET", "/consultations/<int:consultation_id>"): {"anon": 302, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/consultations/<int:consultation_id>/result"): {"anon": 302, "tech": 200, "clinician": 200, "*": 404},
    ("POST", "/consultations/<int:consultation_id>/act"): {"anon": 302, "tech": 302, "clinician": 302, "*": 404},
    ("POST", "/cases/<int:case_id>/consultations"): {"anon": 302, "tech": 302, "clinician": 302, "*": 404},
    ("GET", "/admin/turnaround"): {"anon": 302, "admin": 200, "*": 403},
    # live session (web/live.py): the WebSocket route answers only WebSocket handshakes (400 to a plain
    # GET, before any login check); the SSE stream and its POST follow consultation.view. The stream is
    # not opened here (it would not end); a signed-in viewer who has not joined gets 422 on POST.
    ("GET", "/consultations/<int:consultation_id>/live"): {"*": 400},
    ("POST", "/consultations/<int:consultation_id>/live/send"): {"anon": 302, "tech": 422, "clinician": 422, "*": 404},
    # frozen-section lane: anyone signed in reads and acknowledges only their own pages (999999: nobody's);
    # the on-call roster is its institution's admins' (an empty form is refused on the page, 200)
    ("GET", "/api/v1/frozen/alarms"): {"anon": 401, "*": 200},
    ("POST", "/api/v1/frozen/pages/<int:page_id>/ack"): {"anon": 401, "*": 404},
    ("POST", "/frozen/pages/<int:page_id>/ack"): {"anon": 302, "*": 404},
    ("GET", "/admin/on-call"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/on-call"): {"anon": 302, "admin": 200, "*": 403},
    ("POST", "/admin/on-call/<int:shift_id>/delete"): {"anon": 302, "admin": 404, "*": 403},
    # Reports: <report_id> is a draft report on the cancelled request above, so nobody sees it (404): the
    # centre sees reports only once signed, and no pathologist has access to that case. Who may do what on a
    # live report is covered per role in tests/reports.
    ("GET", "/api/v1/report-codes"): {"anon": 401, "*": 200},
    ("GET", "/api/v1/subspecialties"): {"anon": 401, "*": 200},
    ("GET", "/api/v1/cases/<int:case_id>/reports"): {"anon": 401, "tech": 200, "clinician": 200, "*": 404},
    ("GET", "/api/v1/consultations/<int:consultation_id>/report"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/consultations/<int:consultation_id>/report"):
        {"anon": 401, "tech": 409, "clinician": 409, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>"): {"anon": 401, "*": 404},
    ("PUT", "/api/v1/reports/<int:report_id>"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/reports/<int:report_id>/figures"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/figures/<int:figure>.png"): {"anon": 401, "*": 404},
    ("DELETE", "/api/v1/reports/<int:report_id>/figures/<int:figure>"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/reports/<int:report_id>/sign"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/reports/<int:report_id>/cosign"): {"anon": 401, "*": 404},
    ("POST", "/api/v1/reports/<int:report_id>/versions"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/pdf"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/versions/<int:number>/pdf"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/fhir"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/fhir/_history/<int:number>"): {"anon": 401, "*": 404},
    ("GET", "/api/v1/reports/<int:report_id>/fhir/ImagingStudy"): {"anon": 401, "*": 404},
    ("GET", "/reports/<int:report_id>"): {"anon": 302, "*": 404},
    # public verification (no login); an unknown code is 404 for everyone
    ("GET", "/verify"): {"anon": 200, "*": 200},
    ("GET", "/verify/<code>"): {"anon": 404, "*": 404},
    ("GET", "/api/v1/verify/<code>"): {"anon": 404, "*": 404},
    ("GET", "/healthz"): {"anon": 200, "*": 200},
    ("GET", "/readyz"): {"anon": 200, "*": 200},
}
SKIP_RULES = {"/static/<path:filename>",
              "/consultations/<int:consultation_id>/live/events"}  # an endless stream: tests/live/test_live_access.py


def expected(rule_key, role):
    table = MATRIX[rule_key]
    return table.get(role, table.get("*"))


def test_matrix_covers_every_endpoint(app):
    existing = {(m, r.rule) for r in app.url_map.iter_rules() if r.rule not in SKIP_RULES
                for m in r.methods - {"HEAD", "OPTIONS"}}
    missing = existing - set(MATRIX)
    assert not missing, f"endpoints without an access rule in the matrix: {sorted(missing)}"


@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("m") / "small.svs", 700, 500, mpp=0.5, seed=3)


@pytest.fixture
def ids(world, client_for, small_slide, ready_slide):
    from pathology_hub.models import Slide
    db = world
    case = db.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    ready_slide(case.id, small_slide)
    slide = db.scalars(select(Slide)).one()
    from pathology_hub.domain import consultations
    tech = db.scalar(select(User).where(User.username == "tech"))
    consultation = consultations.create(db, tech, case, {"question": "matrix"})
    consultations.cancel(db, tech, consultation, "matrix: a terminal state")
    from pathology_hub.models.reports import Report, ReportVersion
    report = Report(consultation_id=consultation.id, case_id=case.id, created_by_id=tech.id)
    db.add(report)
    db.flush()
    db.add(ReportVersion(report_id=report.id, number=1, author_id=tech.id))
    db.commit()
    return {"report_id": report.id, "consultation_id": consultation.id, "case_id": case.id, "slide_id": slide.id, "uid": slide.uid, "version": slide.pyramid_version,
            "institution_id": db.scalar(select(Institution.id).where(Institution.code == "COMM2")),
            "user_id": db.scalar(select(User.id).where(User.username == "tech2"))}


@pytest.mark.parametrize("role", ROLES)
def test_role_against_every_endpoint(role, client_for, ids):
    c = client_for(None if role == "anon" else role)
    if role == "anon":
        c.refresh_csrf()
    failures = []
    # Destructive requests last, so they do not hide the others' answers.
    for (method, rule), _ in sorted(MATRIX.items(), key=lambda kv: (kv[0][0] == "DELETE", kv[0])):
        path = rule.replace("<int:case_id>", str(ids["case_id"])) \
                   .replace("<int:institution_id>", str(ids["institution_id"])) \
                   .replace("<int:user_id>", str(ids["user_id"])) \
                   .replace("<int:slide_id>", str(ids["slide_id"])).replace("<uid>", ids["uid"]) \
                   .replace("<int:version>", str(ids["version"])).replace("<name>", "thumbnail") \
                   .replace("<int:level>", "5").replace("<int:col>", "0").replace("<int:row>", "0") \
                   .replace("<upload_id>", "0" * 32).replace("<int:consultation_id>", str(ids["consultation_id"])) \
                   .replace("<int:report_id>", str(ids["report_id"])).replace("<int:figure>", "1") \
                   .replace("<int:number>", "1").replace("<code>", "UNKNOWNCODE234567") \
                   .replace("<int:page_id>", "999999").replace("<int:shift_id>", "999999") \
                   .replace("<int:message_id>", "1")
        kwargs = {}
        if method in ("POST", "PUT", "PATCH"):
            if path.startswith("/api/"):
                kwargs["json"] = {"bogus": True} if method != "PATCH" else {"case_number": "", "patient_pseudo_id": ""}
            else:
                kwargs["data"] = {"csrf_token": c.csrf or ""}
        if path == "/api/v1/cases" and method == "POST":
            kwargs["json"] = {"case_number": ""}
        if path == "/api/v1/users/%d/active" % ids["user_id"]:
            kwargs["json"] = {"active": "maybe"}
        if path == "/login":
            kwargs = {"data": {"username": "x", "password": "y", "csrf_token": c.csrf or ""}}
        resp = getattr(c, method.lower())(path, **kwargs)
        want = expected((method, rule), role)
        if resp.status_code != want:
            failures.append(f"{method} {path}: got {resp.status_code}, want {want}")
        # Logging out ends this client's session; log back in for the rest of the matrix.
        if rule == "/logout" and role != "anon":
            c.login(role)
    assert not failures, "\n".join(failures)


def test_cross_institution_case_is_404_everywhere(client_for, ids):
    other = client_for("tech2")
    for path in (f"/cases/{ids['case_id']}", f"/api/v1/cases/{ids['case_id']}"):
        assert other.get(path).status_code == 404
    resp = other.patch(f"/api/v1/cases/{ids['case_id']}", json={"clinical_history": "x"})
    assert resp.status_code == 404
    assert ids["case_id"] not in [c["id"] for c in other.get("/api/v1/cases").json["cases"]]
