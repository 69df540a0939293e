"""Fault: the S3 gateway (Ceph RGW) stops while a pathologist signs a report.

While it is down, signing answers 503 ``storage_unavailable`` with ``Retry-After`` and a
message in the signer's language, and leaves nothing half-done: no signed version without
its stored PDF, the draft and its revision intact, the consultation still in review, the
(correct) password not counted as a failure. When the gateway is back, the same request
signs, and the stored PDF verifies. Runs on a private cluster (it stops the gateway).
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select, update

from pathology_hub.models import AuditEvent, User
from pathology_hub.models.consultations import Consultation, ConsultationState
from pathology_hub.models.reports import ReportFile, ReportSignature, ReportVersion
from tests.conftest import require
from tests.faults.s3_private import PrivateS3, wait_reachable
from tests.reports.conftest import DRAFT, PASSWORD, make_in_review, ok, save, start_report

pytestmark = [pytest.mark.slow]

# 7483/16792 were assigned, but another helper's cluster (tilingfault-long) already held them.
CLUSTER = PrivateS3.named("webharden", port=7493, mon_port=16802)


@pytest.fixture(scope="module")
def cluster():
    reason = CLUSTER.start()
    require(not reason, reason or "")
    yield CLUSTER
    CLUSTER.run("stop")  # a private cluster holds RAM (memstore); the next run bootstraps it again


@pytest.fixture
def settings(settings, cluster):
    settings.storage_url = cluster.storage_url()
    return settings


@pytest.fixture
def users(world):
    return {u.username: u for u in world.scalars(select(User))}


@pytest.fixture
def report_slide(tmp_path_factory):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(tmp_path_factory.mktemp("fslide") / "fault-he.svs", 1200, 900, mpp=0.25,
                                 tissue_fraction=0.5, seed=13)


def test_gateway_stopped_during_signing_loses_nothing(app, world, client_for, users, report_slide, ready_slide,
                                                      cluster, artifacts):
    from pathology_hub import runtime
    store = runtime.store()
    store.ping()  # creates this test's bucket
    scenario = make_in_review(world, client_for, users, ready_slide, report_slide, number="C-FAULT-1")
    world.execute(update(User).where(User.username == "pathologist").values(locale="zh_CN"))
    world.commit()
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    # No figure: the first storage access of signing is then the PDF write, after the version row was
    # already flipped to "signed" in this transaction: the half-done case that must roll back.
    revision = report["current"]["revision"]
    sign_body = {"password": PASSWORD, "revision": revision}

    # One earlier wrong password on record: the outage must neither add to it nor reset it.
    world.execute(update(User).where(User.username == "pathologist").values(failed_logins=1))
    world.commit()
    cluster.stop_gateway()
    stopped_at = time.monotonic()
    try:
        started = time.monotonic()
        resp = p.post(f"/api/v1/reports/{report['id']}/sign", json=sign_body)
        refusal_seconds = time.monotonic() - started
        assert resp.status_code == 503, resp.get_data(as_text=True)
        error = resp.get_json()["error"]
        assert error["code"] == "storage_unavailable"
        assert int(resp.headers["Retry-After"]) > 0
        assert "报告未签发" in error["message"] and "草稿已保留" in error["message"], error["message"]
        # A second attempt while still down: the same answer, still nothing counted.
        again = p.post(f"/api/v1/reports/{report['id']}/sign", json=sign_body)
        assert again.status_code == 503

        world.expire_all()
        version = world.scalars(select(ReportVersion).where(ReportVersion.report_id == report["id"])).one()
        assert (version.status, version.revision, version.verification_code) == ("draft", revision, None)
        assert version.diagnosis == DRAFT["diagnosis"]
        assert world.scalars(select(ReportFile)).all() == []
        assert world.scalars(select(ReportSignature)).all() == []
        assert world.get(Consultation, scenario.consultation_id).state is ConsultationState.IN_REVIEW
        # the right password was given: never counted as wrong (a right password clears earlier failures)
        assert world.scalar(select(User.failed_logins).where(User.username == "pathologist")) in (0, 1)
        assert world.scalar(select(User.locked_until).where(User.username == "pathologist")) is None
        assert not world.scalars(select(AuditEvent).where(AuditEvent.action == "report.signed")).all()
        # The report still reads from the database while the store is down.
        assert ok(p.get(f"/api/v1/reports/{report['id']}"))["current"]["status"] == "draft"
    finally:
        cluster.start_gateway()
    recovered = wait_reachable(store)
    down_seconds = time.monotonic() - stopped_at

    started = time.monotonic()
    signed = ok(p.post(f"/api/v1/reports/{report['id']}/sign", json=sign_body))
    sign_after_seconds = time.monotonic() - started
    assert signed["current"]["status"] == "signed" and signed["current"]["integrity"]["ok"] is True
    world.expire_all()
    f = world.scalars(select(ReportFile)).one()
    assert store.exists(f.storage_key)
    pdf = p.get(f"/api/v1/reports/{report['id']}/pdf")
    assert pdf.status_code == 200 and pdf.data[:4] == b"%PDF"
    code = signed["current"]["verification_code"]
    assert ok(client_for(None).get(f"/api/v1/verify/{code}"))["valid"] is True
    assert world.get(Consultation, scenario.consultation_id).state is ConsultationState.RETURNED

    figures = {"fault": "S3 gateway stopped during report signing",
               "user_saw": f"503 {error['code']}, Retry-After {resp.headers['Retry-After']} s: {error['message']}",
               "refusal_seconds": round(refusal_seconds, 2), "gateway_down_seconds": round(down_seconds, 1),
               "time_to_recover_seconds": round(recovered, 1), "sign_after_recovery_seconds": round(sign_after_seconds, 2),
               "data_lost": "none (draft intact at its revision, no signature without PDF, signed after recovery)"}
    (artifacts / "fault-s3-signing.json").write_text(json.dumps(figures, ensure_ascii=False, indent=1))
    print(json.dumps(figures, ensure_ascii=False))
