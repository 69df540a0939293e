"""One source of truth for the result (issue 15, items 1 and 2).

A consultation goes through escalation, signing (which returns the result), the clinician's
acknowledgement and an amendment that changes the diagnosis.  Then the clinician, the district
pathologist and the expert must see version 2's diagnosis, attributed to the expert and the
university, on every page and in the PDF, FHIR and JSON; the clinician was told (in the app and
by e-mail, with the reason); the acknowledgement of version 1 does not count for version 2; and
no GET changed any state.
"""

from __future__ import annotations

import base64
import json
import subprocess

import lxml.html
from sqlalchemy import select

from pathology_hub.models import AuditEvent, Base
from pathology_hub.models.consultations import Consultation, Notification
from pathology_hub.models.reports import ResultAcknowledgement
from tests.conftest import require
from tests.consultations.conftest import wait_for_mail
from tests.reports.conftest import DRAFT, make_in_review, ok, report_slide, save, sign, start_report  # noqa: F401

V1 = "Atypical ductal hyperplasia / 非典型导管增生"
V2 = "Invasive ductal carcinoma, grade 2 / 浸润性导管癌，2级"
REASON = "Deeper levels show stromal invasion / 深切片可见间质浸润"
PRELIM = "Atypical ductal proliferation; IHC advised / 导管上皮非典型增生，建议免疫组化"

#: Tables a GET may touch: the access trail (reads are audited) and the login session's idle clock.
READ_BOOKKEEPING = {"audit_events": None, "user_sessions": {"last_seen_at"}}
READ_ACTIONS = {"report.viewed", "report.downloaded", "report.fhir_exported"}


def snapshot(db) -> dict[str, list]:
    """Every row of every table (except the read bookkeeping above), to compare before and after GETs."""
    db.expire_all()
    out = {}
    for table in Base.metadata.sorted_tables:
        if table.name in READ_BOOKKEEPING and READ_BOOKKEEPING[table.name] is None:
            continue
        skip = READ_BOOKKEEPING.get(table.name) or set()
        cols = [c for c in table.columns if c.name not in skip]
        out[table.name] = sorted((tuple(r) for r in db.execute(select(*cols)).all()), key=repr)
    db.rollback()
    return out


def texts(html: str, testid: str) -> list[str]:
    return [e.text_content() for e in lxml.html.fromstring(html).xpath(f'//*[@data-testid="{testid}"]')]


def pdftotext(data: bytes, tmp_path) -> str:
    import shutil
    tool = shutil.which("pdftotext")
    require(tool is not None, "pdftotext (Debian poppler-utils) is not installed")
    src = tmp_path / "r.pdf"
    src.write_bytes(data)
    return subprocess.run([tool, str(src), "-"], check=True, capture_output=True, text=True).stdout


def assert_in_force_page(html: str, expert_name: str, *, where: str, history: bool) -> None:
    """The page shows version 2 as the result, signed by the expert; version 1 only as superseded history."""
    shown = texts(html, "result-diagnosis") + texts(html, "result-summary")
    assert shown, f"{where}: no result shown"
    for text in shown:
        assert V2 in text and V1 not in text, f"{where}: {text!r}"
    for signer in texts(html, "result-signer"):
        assert signer == expert_name, f"{where}: signed by {signer!r}"
    if history:
        [old] = texts(html, "result-superseded-1")
        assert V1 in old, where
    # anywhere else on the page, version 1's diagnosis appears only inside the superseded history
    doc = lxml.html.fromstring(html)
    for el in doc.xpath('//*[@data-testid="result-superseded-1"]'):
        el.drop_tree()
    assert V1 not in doc.text_content(), f"{where}: version 1 shown outside the superseded history"


def test_amended_result_reaches_everyone_and_needs_a_new_acknowledgement(
        world, client_for, users, report_slide, ready_slide, smtp_sink, tmp_path):  # noqa: F811
    db = world
    users["clinician"].email = "clinician@comm1.example"
    db.commit()
    s = make_in_review(db, client_for, users, ready_slide, report_slide, number="C-TRUTH-1")
    clin, path_, expert, tech = (client_for(n) for n in ("clinician", "pathologist", "expert", "tech"))
    expert_name, district_name = users["expert"].full_name, users["pathologist"].full_name
    univ = users["expert"].institution

    # ---- escalation with the district's preliminary opinion, to a named expert
    root = s.consultation_id
    child = ok(path_.post(f"/api/v1/consultations/{root}/escalate",
                          json={"preliminary_opinion": PRELIM, "expert_id": users["expert"].id}))["child_id"]
    ok(expert.post(f"/api/v1/consultations/{child}/accept"))

    # ---- the expert signs version 1: the chain is reported and returned at once
    report = save(expert, start_report(expert, child), {**DRAFT, "diagnosis": V1, "diagnosis_code": ""})
    rid = sign(expert, report)["id"]
    assert ok(clin.get(f"/api/v1/consultations/{root}"))["state"] == "returned"

    # ---- opening the result does not acknowledge; the clinician confirms version 1 explicitly
    page = clin.get(f"/consultations/{root}/result").get_data(as_text=True)
    assert texts(page, "acknowledge-button") and V1 in texts(page, "result-diagnosis")[0]
    clin.get(f"/api/v1/reports/{rid}/pdf")
    assert ok(clin.get(f"/api/v1/consultations/{root}"))["state"] == "returned"
    missing = clin.post(f"/api/v1/consultations/{root}/acknowledge", json={})
    assert missing.status_code == 422 and missing.json["error"]["code"] == "missing_field"
    acked = ok(clin.post(f"/api/v1/consultations/{root}/acknowledge", json={"version": 1}))
    assert acked["state"] == "acknowledged" and acked["result"]["acknowledgement"]["version"] == 1

    # ---- the expert amends: version 2 changes the diagnosis, with a reason
    draft = ok(expert.post(f"/api/v1/reports/{rid}/versions", json={"kind": "amendment", "reason": REASON}), 201)
    v2 = sign(expert, save(expert, draft, {"diagnosis": V2, "diagnosis_code": "8500/3"}))["current"]
    assert v2["number"] == 2 and v2["status"] == "signed"

    # ---- the clinician was told, in the app and by e-mail, with the change and its reason
    db.expire_all()
    note = db.scalars(select(Notification).where(Notification.user_id == users["clinician"].id,
                                                 Notification.kind == "report_amended")).one()
    assert note.consultation_id == root
    bell = ok(clin.get("/api/v1/notifications"))["notifications"]
    amended = next(n for n in bell if n["kind"] == "report_amended")
    assert REASON in amended["text"] and amended["url"] == f"/consultations/{root}/result"
    assert amended["params"]["diagnosis"] == V2 and amended["params"]["previous_diagnosis"] == V1
    mails = [m for m in wait_for_mail(smtp_sink, 1) if m[0] == ["clinician@comm1.example"]]
    body = next(m[1] for m in mails if "更正报告" in m[1])
    assert REASON in body and V2 in body and V1 in body and f"/consultations/{root}/result" in body
    assert body.index(REASON) < body.index(f"/consultations/{root}/result")
    # the district pathologist and the centre's technicians hear about it too
    for name in ("pathologist", "tech"):
        assert db.scalars(select(Notification).where(Notification.user_id == users[name].id,
                                                     Notification.kind == "report_amended")).all(), name

    # ---- the acknowledgement of version 1 does not count for version 2
    data = ok(clin.get(f"/api/v1/consultations/{root}"))
    assert data["state"] == "returned" and data["result"]["acknowledged"] is False
    assert [a["version"] for a in data["result"]["acknowledgements"]] == [1]
    assert db.get(Consultation, root).acknowledged_at is not None  # the first one still ends the TAT stage

    # ---- everyone sees version 2, attributed to the expert, everywhere (and no GET changes state)
    before = snapshot(db)
    audit_before = db.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    pages = {
        "clinician": (clin, [(f"/consultations/{root}/result", True), (f"/consultations/{root}", True),
                             (f"/cases/{s.case_id}", False), ("/", False)]),
        "pathologist": (path_, [(f"/consultations/{root}", True), (f"/consultations/{root}/result", True),
                                (f"/consultations/{child}", True), (f"/cases/{s.case_id}", False)]),
        "expert": (expert, [(f"/consultations/{child}", True), (f"/consultations/{child}/result", True),
                            (f"/cases/{s.case_id}", False)]),
    }
    for who, (client, urls) in pages.items():
        for url, history in urls:
            resp = client.get(url)
            assert resp.status_code == 200, (who, url, resp.status_code)
            assert_in_force_page(resp.get_data(as_text=True), expert_name, where=f"{who} {url}", history=history)
        # the district pathologist's preliminary opinion stays theirs
        if who != "clinician":
            html = client.get(f"/consultations/{child if who == 'expert' else root}").get_data(as_text=True)
            assert PRELIM in texts(html, "preliminary-opinion")[0]
            assert texts(html, "preliminary-by")[0].startswith(district_name)

        # the report page: version 2 in force, version 1 marked superseded
        report_page = client.get(f"/reports/{rid}").get_data(as_text=True)
        assert V2 in texts(report_page, "report-diagnosis-2")[0] and V1 in texts(report_page, "report-diagnosis-1")[0]
        assert texts(report_page, "report-status-2") != texts(report_page, "report-status-1")

        # JSON: the consultation(s), the case's list, the report
        own = root if who != "expert" else child
        for cid in ([root, child] if who == "pathologist" else [own]):
            res = ok(client.get(f"/api/v1/consultations/{cid}"))["result"]
            assert res["in_force"]["version"] == 2 and res["in_force"]["diagnosis"] == V2
            assert res["in_force"]["signed_by"] == {"id": users["expert"].id, "full_name": expert_name,
                                                    "institution": univ.name, "institution_code": univ.code}
            assert [(v["version"], v["status"], v["diagnosis"]) for v in res["superseded"]] == [(1, "superseded", V1)]
            assert res["superseded"][0]["superseded_at"] and res["superseded"][0]["signed_at"]
            assert "opinion" not in ok(client.get(f"/api/v1/consultations/{cid}"))
        listed = ok(client.get(f"/api/v1/cases/{s.case_id}/consultations"))["consultations"]
        assert {c["result"]["in_force"]["diagnosis"] for c in listed if c["result"]} == {V2}
        rep = ok(client.get(f"/api/v1/reports/{rid}"))
        assert rep["current"]["diagnosis"] == V2 and rep["current"]["signed_by"] == expert_name

        # FHIR and PDF
        fhir = ok(client.get(f"/api/v1/reports/{rid}/fhir"))
        assert fhir["status"] == "amended" and fhir["conclusion"] == V2
        assert any(expert_name in p.get("display", "") and univ.name in p.get("display", "")
                   for p in fhir["performer"])
        assert base64.b64decode(fhir["presentedForm"][0]["data"]).startswith(b"%PDF")
        pdf = client.get(f"/api/v1/reports/{rid}/pdf")
        assert pdf.status_code == 200
        pdf_text = " ".join(pdftotext(pdf.data, tmp_path).split())
        assert "Invasive ductal carcinoma" in pdf_text and expert_name in pdf_text
        assert "Atypical ductal hyperplasia" not in pdf_text

    worklist = ok(clin.get("/api/v1/worklist"))["worklists"]["clinician"]
    assert [i["result"]["in_force"]["diagnosis"] for i in worklist if i["id"] == root] == [V2]
    # the verification page of version 1 says it is superseded by version 2
    v1_code = ok(clin.get(f"/api/v1/reports/{rid}"))["versions"][0]["verification_code"]
    verified = ok(client_for(None).get(f"/api/v1/verify/{v1_code}"))
    assert verified["superseded"] is True and verified["superseded_by"] == 2 and verified["latest_version"] == 2
    assert verified["superseded_at_text"]
    shown = texts(client_for(None).get(f"/verify/{v1_code}").get_data(as_text=True), "verify-superseded-at")
    assert shown and all(t.endswith("(UTC+08:00)") for t in shown), shown  # the time zone is written

    assert snapshot(db) == before, "a GET changed stored state"
    read = db.scalars(select(AuditEvent.action).where(AuditEvent.id > audit_before)).all()
    assert read and set(read) <= READ_ACTIONS, set(read) - READ_ACTIONS
    assert ok(clin.get(f"/api/v1/consultations/{root}"))["state"] == "returned"

    # ---- acknowledging needs the version in force: version 1 is refused, version 2 counts
    stale = clin.post(f"/api/v1/consultations/{root}/acknowledge", json={"version": 1})
    assert stale.status_code == 409 and stale.json["error"]["code"] == "result_version_outdated"
    assert stale.json["error"]["details"]["in_force"] == 2
    assert path_.post(f"/api/v1/consultations/{root}/acknowledge", json={"version": 2}).status_code == 403
    done = ok(clin.post(f"/api/v1/consultations/{root}/acknowledge", json={"version": 2}))
    assert done["state"] == "acknowledged" and done["result"]["acknowledgement"]["version"] == 2
    db.expire_all()
    rows = db.scalars(select(ResultAcknowledgement).order_by(ResultAcknowledgement.id)).all()
    assert [(r.consultation_id, r.version.number, r.user_id) for r in rows] == [
        (root, 1, users["clinician"].id), (root, 2, users["clinician"].id)]
    audited = db.scalars(select(AuditEvent).where(AuditEvent.action == "consultation.acknowledge",
                                                  AuditEvent.object_id == str(root)).order_by(AuditEvent.id)).all()
    assert [(a.actor_name, json.loads(a.details)["version"]) for a in audited] == [("clinician", 1), ("clinician", 2)]
