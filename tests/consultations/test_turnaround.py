"""Turnaround clock, targets, flags, the overdue notifier and the dashboard numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from pathology_hub.domain import consultations as svc
from pathology_hub.domain import turnaround as tat
from pathology_hub.models import Priority
from pathology_hub.models.consultations import ConsultationState as S, Notification
from tests.consultations.conftest import signed_version_row

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday 08:00 in Shanghai


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_working_days_skip_the_weekend(monkeypatch):
    monkeypatch.setenv("TURNAROUND_TIMEZONE", "Asia/Shanghai")
    friday_noon = dt.datetime(2026, 3, 6, 4, 0, tzinfo=UTC)    # Fri 12:00 local
    monday_noon = dt.datetime(2026, 3, 9, 4, 0, tzinfo=UTC)    # Mon 12:00 local
    assert tat.elapsed(friday_noon, monday_noon, working_days_only=True) == 24 * 3600
    assert tat.elapsed(friday_noon, monday_noon) == 72 * 3600


def test_targets_are_configurable(monkeypatch):
    assert tat.targets()["frozen"].seconds == 1200 and tat.targets()["routine"].working_days_only
    monkeypatch.setenv("TURNAROUND_TARGETS", '{"urgent": {"hours": 12}}')
    assert tat.targets()["urgent"].seconds == 12 * 3600 and tat.targets()["frozen"].seconds == 1200
    monkeypatch.setenv("TURNAROUND_TARGETS", '{"urgent": {"weeks": 1}}')
    with pytest.raises(RuntimeError):
        tat.targets()


def test_constructed_history_with_a_pause(world, users, make_consultation):
    """Submitted 0 h, assigned 2 h, accepted 3 h, info requested 5–9 h (paused), reported 13 h, acknowledged 14 h."""
    db = world
    c = make_consultation(S.DRAFT)
    c.priority = Priority.URGENT
    db.commit()
    svc.submit(db, users["tech"], c, now=h(0), skip_slide_check_for_demo_seed=True)
    svc.assign(db, users["admin"], c, users["pathologist"].id, now=h(2))
    svc.accept(db, users["pathologist"], c, now=h(3))
    svc.request_info(db, users["pathologist"], c, "recuts", now=h(5))
    assert tat.status(c, h(7)).elapsed_seconds == 5 * 3600            # paused since 5 h
    svc.answer_info(db, users["tech"], c, "sent", now=h(9))
    status = tat.status(c, h(22))                                     # 22 h elapsed, 4 h paused
    assert status.elapsed_seconds == 18 * 3600 and status.flag == "ok"
    assert tat.status(c, h(25)).flag == "approaching"                # 21 h of 24 h = 87 %
    svc.mark_reported(db, users["pathologist"], c, now=h(13))
    signed_version_row(db, c, users["pathologist"], "Benign.", at=h(13))
    svc.return_result(db, users["pathologist"], c, "", now=h(13.5))
    svc.acknowledge(db, users["clinician"], c, 1, now=h(14))
    db.commit()
    assert tat.status(c, h(100)).flag == "met" and tat.status(c, h(100)).elapsed_seconds == 9 * 3600
    assert tat.stage_seconds(c) == {"submitted_to_assigned": 7200, "assigned_to_accepted": 3600,
                                    "accepted_to_reported": 6 * 3600, "reported_to_acknowledged": 3600}
    data = tat.dashboard(db)
    row = next(r for r in data["institution"] if r["group"] == "DIST1" and r["stage"] == "accepted_to_reported")
    assert (row["count"], row["median_hours"], row["p90_hours"]) == (1, 6.0, 6.0)
    assert any(r["group"] == "pathologist" for r in data["pathologist"])
    assert "institution,DIST1,accepted_to_reported,1,6.0,6.0" in tat.dashboard_csv(data)


def test_percentiles():
    assert tat.percentile([1, 2, 3, 4], 50) == 2.5
    assert tat.percentile(list(range(1, 11)), 90) == pytest.approx(9.1)


def test_flag_overdue_notifies_triage_pathologists_once(world, users, make_consultation, monkeypatch):
    monkeypatch.setenv("FROZEN_TARGET_MINUTES", "30")  # the default is 20; this history is written for 30
    db = world
    c = make_consultation(S.DRAFT)
    c.priority = Priority.FROZEN
    db.commit()
    svc.submit(db, users["tech"], c, now=h(0), skip_slide_check_for_demo_seed=True)
    db.commit()
    assert svc.flag_overdue(db, h(0.4)) == []                        # 24 of 30 minutes: approaching only
    assert tat.status(c, h(0.45)).flag == "approaching"
    assert svc.flag_overdue(db, h(1)) == [c.id]
    assert svc.flag_overdue(db, h(2)) == []                          # once
    db.commit()
    overdue = db.scalars(select(Notification).where(Notification.kind == "overdue")).all()
    assert [n.user_id for n in overdue] == [users["pathologist"].id]  # pathologists only, not the admin
