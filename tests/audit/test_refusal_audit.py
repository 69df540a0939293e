"""Refused access (403/404 decided by the policy) is audited, sampled per user, object and window,
so an administrator can see another institution's user probing cases, slides, tiles, consultations,
reports and annotations; legitimate use writes no such entry."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from pathology_hub.domain import refusal_audit
from pathology_hub.models import AuditEvent, Case, Slide, User

T0 = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.timezone.utc)


def _refusals(db) -> list[AuditEvent]:
    db.expire_all()
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == refusal_audit.ACTION)
                           .order_by(AuditEvent.id)))


def _flush_now() -> int:
    return refusal_audit.default_aggregator().maybe_flush(force=True)


# ---------------------------------------------------------------- sampling
def test_one_entry_per_user_object_and_window(world):
    agg = refusal_audit.RefusalAggregator(window_seconds=60)
    user = world.scalar(select(User).where(User.username == "tech2"))
    for s in range(0, 50, 10):  # five refusals of case 7 within one window
        agg.note(user.id, "case", 7, case_id=7, status=404, action="case.view", path="/cases/7/viewer",
                 ip="10.0.0.9", at=T0 + dt.timedelta(seconds=s))
    agg.note(user.id, "slide", 3, case_id=7, status=404, action="slide.view", path="/api/v1/slides/3", at=T0)
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=59)) == 0  # the window has not elapsed
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=61)) == 2
    world.commit()
    entries = _refusals(world)
    case_entry = next(e for e in entries if e.object_type == "case")
    details = json.loads(case_entry.details)
    assert (case_entry.object_id, case_entry.case_id, case_entry.actor_name, case_entry.ip) == ("7", 7, "tech2",
                                                                                                 "10.0.0.9")
    assert details["count"] == 5 and details["statuses"] == {"404": 5} and details["actions"] == ["case.view"]
    assert details["paths"] == ["/cases/7/viewer"]
    assert details["since"] == T0.isoformat() and details["until"] == (T0 + dt.timedelta(seconds=40)).isoformat()
    # the next window starts a new entry
    agg.note(user.id, "case", 7, case_id=7, status=404, action="case.view", at=T0 + dt.timedelta(seconds=70))
    assert agg.flush(world, now=T0 + dt.timedelta(seconds=131)) == 1


def test_failed_write_keeps_the_notes(world):
    agg = refusal_audit.RefusalAggregator(window_seconds=60)
    agg.note(1, "case", 7, case_id=7, status=404, action="case.view", at=T0)

    def broken():
        raise RuntimeError("database down")
    assert agg.maybe_flush(force=True, session_factory=broken) == 0
    assert agg.pending() == 1


# ---------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def small_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("r") / "small.svs", 700, 500, mpp=0.5, seed=3)


@pytest.fixture
def probed(world, client_for, small_slide, ready_slide):
    """The demo case (COMM1) with a tiled slide, a consultation with a report and an annotation."""
    from pathology_hub.domain import consultations
    from pathology_hub.models.reports import Report, ReportVersion
    case = world.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = client_for("tech")
    ready_slide(case.id, small_slide)
    slide = world.scalars(select(Slide)).one()
    tech_user = world.scalar(select(User).where(User.username == "tech"))
    c = consultations.create(world, tech_user, case, {"question": "q"})
    report = Report(consultation_id=c.id, case_id=case.id, created_by_id=tech_user.id)
    world.add(report)
    world.flush()
    world.add(ReportVersion(report_id=report.id, number=1, author_id=tech_user.id))
    world.commit()
    info = tech.get(f"/api/v1/cases/{case.id}/slides").json["slides"][0]
    refusal_audit.default_aggregator().discard()
    return {"case": case.id, "slide": slide.id, "consultation": c.id, "report": report.id,
            "dzi": info["dzi_url"], "tile": info["dzi_url"].replace("slide.dzi", "slide_files/10/0_0.jpeg")}


def _urls(p: dict, *, reports: bool = True) -> list[str]:
    """The case page, the viewer deep link, case/slide/annotation/consultation API, DZI and a tile
    (with the owner's token), and the report."""
    urls = [f"/cases/{p['case']}", f"/cases/{p['case']}/viewer?slide={p['slide']}&x=0.5&y=0.5&z=3",
            f"/api/v1/cases/{p['case']}", f"/api/v1/slides/{p['slide']}",
            f"/api/v1/slides/{p['slide']}/annotations", f"/api/v1/consultations/{p['consultation']}",
            f"/consultations/{p['consultation']}", p["dzi"], p["tile"]]
    return urls + ([f"/api/v1/reports/{p['report']}", f"/reports/{p['report']}"] if reports else [])


def test_probing_user_leaves_one_sampled_entry_per_object(client_for, world, probed):
    prober = client_for("tech2")  # another community centre
    for _ in range(3):  # repeated probing within one window
        for url in _urls(probed):
            assert prober.get(url).status_code == 404, url
    # the tile and DZI URLs carry the owner's token: the fast path refused them, Flask's policy said 404
    assert refusal_audit.default_aggregator().pending() == 4
    assert _flush_now() == 4
    entries = {(e.object_type, e.object_id): e for e in _refusals(world)}
    assert len(entries) == 4
    counts = {key: json.loads(e.details)["count"] for key, e in entries.items()}
    assert counts == {("case", str(probed["case"])): 3 * 3, ("slide", str(probed["slide"])): 3 * 4,
                      ("consultation", str(probed["consultation"])): 3 * 2, ("report", str(probed["report"])): 3 * 2}
    assert all(e.actor_name == "tech2" and e.case_id == probed["case"] for e in entries.values())
    slide_details = json.loads(entries[("slide", str(probed["slide"]))].details)
    assert slide_details["statuses"] == {"404": 12} and slide_details["actions"] == ["slide.view"]
    assert len(slide_details["paths"]) == refusal_audit.MAX_PATHS


def test_legitimate_users_leave_no_refusal_entries(client_for, world, probed):
    tech = client_for("tech")
    for url in _urls(probed, reports=False):  # (the draft's report is not the centre's to read yet)
        r = tech.get(url)
        if url.endswith("/annotations"):  # a business rule, not a refusal of the object: not audited
            assert r.status_code == 403 and r.get_json()["error"]["code"] == "report_not_signed"
        else:
            assert r.status_code == 200, url
    # a tile outside the pyramid and an unknown case are 404s, but no refusal by the policy
    assert tech.get(probed["dzi"].replace("slide.dzi", "slide_files/10/999_999.jpeg")).status_code == 404
    assert tech.get("/cases/999999").status_code == 404
    assert refusal_audit.default_aggregator().pending() == 0
    _flush_now()
    assert _refusals(world) == []


def test_403_on_an_object_is_audited_too(client_for, world, probed):
    """The clinician sees the case but may not withdraw its slides (DELETE withdraws): 403, noted with the action."""
    clinician = client_for("clinician")
    r = clinician.delete(f"/api/v1/slides/{probed['slide']}")
    assert r.status_code == 403
    _flush_now()
    (entry,) = _refusals(world)
    details = json.loads(entry.details)
    assert (entry.object_type, entry.actor_name) == ("slide", "clinician")
    assert details["statuses"] == {"403": 1} and details["actions"] == ["slide.withdraw"]


def test_admin_filters_refusals_with_a_translated_name(client_for, world, probed, app):
    refusal_audit.configure(0)  # every window has elapsed: the audit page writes what is pending
    try:
        client_for("tech2").get(f"/cases/{probed['case']}/viewer")
        admin = client_for("admin")
        page = admin.get("/admin/audit?action=access.refused").get_data(as_text=True)
        assert "Access refused (403/404, sampled)" in page and "access.refused" in page
        assert page.count('data-testid="action-label"') == 1
        admin.post("/lang", data={"lang": "zh_CN"})
        page = admin.get("/admin/audit?action=access.refused").get_data(as_text=True)
        assert "拒绝访问（403/404，抽样记录）" in page
    finally:
        refusal_audit.configure(float(app.config["SETTINGS"].view_audit_window_seconds))
