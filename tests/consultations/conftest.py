"""Helpers for consultation tests: users by name, requests built directly in a given state."""

from __future__ import annotations

import socket
import time
from email import message_from_bytes
from email.policy import default as email_policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from pathology_hub.models import Case, Institution, User
from pathology_hub.models.consultations import Consultation, ConsultationState
from tests.fixtures.uploads import tus_upload  # noqa: F401 - re-export

__all__ = ["tus_upload", "signed_version_row", "wait_for_mail"]


class Sink:
    """An SMTP server (aiosmtpd) that keeps every message: (recipients, "subject\nbody")."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001 - aiosmtpd protocol
        msg = message_from_bytes(envelope.content, policy=email_policy)
        self.messages.append((envelope.rcpt_tos, f"{msg['Subject']}\n{msg.get_content()}"))
        return "250 OK"


@pytest.fixture
def smtp_sink(settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings.smtp_url = f"smtp://127.0.0.1:{port}?from=hub@example.org"
    yield sink
    controller.stop()
    settings.smtp_url = ""


def wait_for_mail(sink, n):
    deadline = time.time() + 5
    while len(sink.messages) < n and time.time() < deadline:
        time.sleep(0.05)
    return sink.messages


def signed_version_row(db, c: Consultation, signer: User, diagnosis: str, *, at=None):
    """A signed report version written straight into the tables (no PDF), for state-machine tests
    that need a result in force without rendering and signing a document."""
    from pathology_hub.models import utcnow
    from pathology_hub.models.reports import Report, ReportVersion
    at = at or utcnow()
    report = db.scalar(select(Report).where(Report.consultation_id == c.id))
    if report is None:
        report = Report(consultation_id=c.id, case_id=c.case_id, created_by_id=signer.id, created_at=at)
        db.add(report)
        db.flush()
    number = 1 + len(report.versions)
    v = ReportVersion(report_id=report.id, number=number, kind="original" if number == 1 else "amendment",
                      status="signed", diagnosis=diagnosis, author_id=signer.id, created_at=at, updated_at=at,
                      signed_at=at, signed_by_id=signer.id)
    for old in report.versions:
        if old.status == "signed":
            old.status, old.superseded_at, old.superseded_by_number = "superseded", at, number
    db.add(v)
    db.flush()
    db.refresh(report)
    return v


@pytest.fixture
def users(world):
    return {u.username: u for u in world.scalars(select(User))}


@pytest.fixture
def insts(world):
    return {i.code: i for i in world.scalars(select(Institution))}


@pytest.fixture
def demo_case(world) -> Case:
    return world.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))


@pytest.fixture
def make_consultation(world, users, insts, demo_case):
    """A request on the demo case put straight into ``state`` (bypassing transitions), for table tests."""
    def make(state: ConsultationState, *, receiving: str = "DIST1", assignee: str | None = None,
             parent: Consultation | None = None, case: Case | None = None) -> Consultation:
        case = case or demo_case
        c = Consultation(case_id=case.id, state=state, requesting_institution_id=case.institution_id,
                         receiving_institution_id=None if state is ConsultationState.DRAFT else insts[receiving].id,
                         assignee_id=users[assignee].id if assignee else None, question="q",
                         created_by_id=users["tech"].id, parent_id=parent.id if parent else None)
        world.add(c)
        world.commit()
        return c
    return make
