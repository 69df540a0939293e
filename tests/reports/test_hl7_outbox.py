"""HL7 v2.5.1 ORU^R01 to the referring LIS over MLLP, through the outbox.

A real TCP listener (``LisListener``) stands in for the hospital LIS: it parses every message
with hl7apy and answers ACK AA, AE, or nothing, as the test asks."""

from __future__ import annotations

import base64
import socket
import threading
import time

import pytest
from sqlalchemy import select

from pathology_hub.domain.hl7 import mllp
from pathology_hub.domain.hl7 import outbox as hl7_outbox
from pathology_hub.models import Case, Institution
from pathology_hub.models.hl7 import Hl7Message
from tests.reports.conftest import ok, save, sign, signed_report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LisListener:
    """A small MLLP server: parses each message with hl7apy, records it, answers per ``mode``."""

    def __init__(self, port: int, mode: str = "AA") -> None:
        self.port, self.mode = port, mode
        self.messages: list[str] = []
        self.parsed: list = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(5)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from hl7apy.parser import parse_message
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while mllp.END not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if mllp.END not in buf:
                    continue
                text = mllp.unframe(buf)
                self.messages.append(text)
                msg = parse_message(text)
                self.parsed.append(msg)
                if self.mode == "none":
                    time.sleep(2.0)
                    continue
                control = msg.msh.msh_10.value
                ack = (f"MSH|^~\\&|LIS|HOSP|PATHOLOGY_HUB|X|20261204000000||ACK^R01^ACK|A{control}|P|2.5.1\r"
                       f"MSA|{self.mode}|{control}" + ("|Unknown patient identifier" if self.mode == "AE" else "")
                       + ("\rERR|||204^Unknown key identifier^HL70357|E" if self.mode == "AE" else ""))
                conn.sendall(mllp.frame(ack))

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@pytest.fixture
def lis(world, monkeypatch):
    """COMM1 (the referring institution of the report scenario) has an LIS on a free local port."""
    monkeypatch.setenv("HL7_MLLP_TIMEOUT_SECONDS", "1.5")
    port = _free_port()
    inst = world.scalars(select(Institution).where(Institution.code == "COMM1")).one()
    inst.lis_host, inst.lis_port = "127.0.0.1", port
    world.commit()
    listeners: list[LisListener] = []

    def start(mode: str = "AA") -> LisListener:
        listener = LisListener(port, mode)
        listeners.append(listener)
        return listener
    start.port = port
    yield start
    for listener in listeners:
        listener.close()


def _rows(db) -> list[Hl7Message]:
    db.expire_all()
    return list(db.scalars(select(Hl7Message).order_by(Hl7Message.id)))


def _segments(text: str, name: str) -> list[list[str]]:
    return [s.split("|") for s in text.split("\r") if s.startswith(name + "|")]


def test_signed_report_sends_one_oru_matching_the_report(db, client_for, scenario, lis):
    listener = lis("AA")
    signed_report(client_for, scenario)
    assert len(listener.messages) == 1
    msg = listener.parsed[0]
    assert msg.msh.msh_9.to_er7() == "ORU^R01^ORU_R01" and msg.msh.msh_12.value == "2.5.1"
    text = listener.messages[0]
    case = db.get(Case, scenario.case_id)
    pid = _segments(text, "PID")[0]
    assert pid[3].split("^")[0] == case.patient_pseudo_id and pid[5] == f"{case.patient_pseudo_id}^^^^^^S"
    obr = _segments(text, "OBR")[0]
    assert obr[2] == case.case_number and obr[25] == "F"
    obx = _segments(text, "OBX")
    by_code = {(o[2], o[3].split("^")[0]): o for o in obx}
    assert by_code[("TX", "22637-3")][5] == "Invasive ductal carcinoma, grade 2 / 浸润性导管癌，2级"
    assert by_code[("CWE", "22637-3")][5].split("^")[0] == "8500/3"
    assert by_code[("CWE", "22637-3")][5].split("^")[2] == "ICDO3"
    ed = by_code[("ED", "PDF")][5].split("^")
    assert base64.b64decode(ed[4]).startswith(b"%PDF")
    assert all(o[11] == "F" for o in obx)
    [row] = _rows(db)
    assert row.status == "delivered" and row.ack_code == "AA" and row.attempts == 1
    assert row.control_id == msg.msh.msh_10.value


def test_no_patient_name_anywhere(db, client_for, scenario, lis):
    case = db.get(Case, scenario.case_id)
    case.patient_name = "Wangmazi Qiantang 王麻子"
    db.commit()
    listener = lis("AA")
    signed_report(client_for, scenario)
    text = listener.messages[0]
    assert "Wangmazi" not in text and "王麻子" not in text and "Qiantang" not in text


def test_amendment_is_sent_as_corrected_with_new_text(db, client_for, scenario, lis):
    listener = lis("AA")
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions", json={"kind": "amendment", "reason": "regrade"}),
               201)
    draft = save(p, draft, {"diagnosis": "Invasive ductal carcinoma, grade 3"})
    sign(p, draft)
    assert len(listener.messages) == 2
    text = listener.messages[1]
    assert _segments(text, "OBR")[0][25] == "C"
    obx = _segments(text, "OBX")
    assert all(o[11] == "C" for o in obx)
    assert ["Invasive ductal carcinoma, grade 3"] == [o[5] for o in obx if o[2] == "TX" and o[3].startswith("22637-3")]
    assert any(o[5] == "regrade" for o in obx)


def test_lis_down_keeps_message_queued_then_delivers(db, client_for, scenario, lis):
    signed_report(client_for, scenario)  # nothing listens on the port
    [row] = _rows(db)
    assert row.status == "queued" and row.attempts == 1 and row.next_attempt_at is not None
    assert "refused" in (row.last_error or "").lower() or "Error" in (row.last_error or "")
    listener = lis("AA")
    # the worker runs the planned retry job (the queue's delay has nothing to test here)
    from pathology_hub.domain import jobs
    from pathology_hub.db import SessionLocal
    assert jobs.run(lambda: SessionLocal.session_factory(), row.job_id) == "done"
    [row] = _rows(db)
    assert row.status == "delivered" and row.attempts == 2 and row.last_error is None
    assert len(listener.messages) == 1


def test_outbox_errors_are_explained_in_the_admins_language(db, client_for, scenario, lis):
    """The socket error is technical detail; the admin reads what happened in zh or en."""
    signed_report(client_for, scenario)  # nothing listens: connection refused
    admin = client_for("admin")
    zh = admin.get("/admin/lis", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "无法连接 LIS" in zh and "Connection refused" in zh
    en = admin.get("/admin/lis", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "The LIS could not be reached" in en


def test_a_crashed_send_job_plans_a_new_attempt(db, client_for, scenario, lis, monkeypatch):
    """A bug or an unexpected error in the send job must not strand the message as "queued"."""
    signed_report(client_for, scenario)  # nothing listens: queued, a retry job planned
    [row] = _rows(db)
    first_job = row.job_id
    from pathology_hub.db import SessionLocal
    from pathology_hub.domain import jobs
    from pathology_hub.domain.hl7 import mllp

    def crash(*_args, **_kwargs):
        raise RuntimeError("unexpected")
    real_send = mllp.send
    monkeypatch.setattr(mllp, "send", crash)
    jobs.run(lambda: SessionLocal.session_factory(), first_job)
    db.expire_all()
    [row] = _rows(db)
    assert row.status == "queued" and row.job_id != first_job and "unexpected" in row.last_error
    monkeypatch.setattr(mllp, "send", real_send)
    listener = lis("AA")
    assert jobs.run(lambda: SessionLocal.session_factory(), row.job_id) == "done"
    [row] = _rows(db)
    assert row.status == "delivered" and len(listener.messages) == 1


def test_no_ack_is_retried(db, client_for, scenario, lis):
    listener = lis("none")
    signed_report(client_for, scenario)
    [row] = _rows(db)
    assert row.status == "queued" and "ACK" in row.last_error and len(listener.messages) == 1


def test_ae_marks_failed_with_text_and_admin_resend_delivers(db, client_for, scenario, lis):
    listener = lis("AE")
    signed_report(client_for, scenario)
    [row] = _rows(db)
    assert row.status == "failed" and row.ack_code == "AE"
    assert "Unknown patient identifier" in row.last_error and "204" in row.last_error
    admin = client_for("admin")
    page = admin.get("/admin/lis")
    assert page.status_code == 200 and "Unknown patient identifier" in page.get_data(as_text=True)
    assert admin.http.post(f"/admin/lis/messages/{row.id}/resend").status_code == 400  # no CSRF token
    listener.mode = "AA"
    resp = admin.post(f"/admin/lis/messages/{row.id}/resend")
    assert resp.status_code == 302
    [row] = _rows(db)
    assert row.status == "delivered" and row.attempts == 2
    assert listener.messages[0] == listener.messages[1]  # the same message, resent
    from pathology_hub.models import AuditEvent
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "hl7.resent")) is not None
    assert client_for("pathologist").post(f"/admin/lis/messages/{row.id}/resend").status_code == 403


def test_endpoint_validation_is_translated(world, client_for):
    admin = client_for("admin")
    inst = world.scalars(select(Institution).where(Institution.code == "COMM1")).one()
    resp = admin.post(f"/admin/lis/institutions/{inst.id}/endpoint",
                      data={"lis_host": "bad host!", "lis_port": "2575"},
                      headers={"Accept-Language": "zh-CN"}, follow_redirects=True)
    assert "LIS 主机名" in resp.get_data(as_text=True)
    resp = admin.post(f"/admin/lis/institutions/{inst.id}/endpoint",
                      data={"lis_host": "lis.hospital.local", "lis_port": "70000"},
                      follow_redirects=True)
    world.expire_all()
    assert inst.lis_port is None
    resp = admin.post(f"/admin/lis/institutions/{inst.id}/endpoint",
                      data={"lis_host": "lis.hospital.local", "lis_port": "2575"})
    world.expire_all()
    assert (inst.lis_host, inst.lis_port) == ("lis.hospital.local", 2575)


def test_retry_delay_doubles_and_is_capped(monkeypatch):
    monkeypatch.setenv("HL7_RETRY_BASE_SECONDS", "30")
    monkeypatch.setenv("HL7_RETRY_MAX_SECONDS", "100")
    assert [hl7_outbox.retry_delay(n) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


def test_large_pdf_goes_as_a_link(db, client_for, scenario, lis, monkeypatch):
    monkeypatch.setenv("HL7_PDF_MAX_BYTES", "10")
    listener = lis("AA")
    signed_report(client_for, scenario)
    obx = _segments(listener.messages[0], "OBX")
    [rp] = [o for o in obx if o[3].startswith("PDF^")]
    assert rp[2] == "RP" and "/api/v1/reports/" in rp[5] and not any(o[2] == "ED" for o in obx)



def test_addendum_is_sent_as_corrected_with_the_addendum_text(db, client_for, scenario, lis):
    listener = lis("AA")
    report = signed_report(client_for, scenario)
    p = client_for("pathologist")
    draft = ok(p.post(f"/api/v1/reports/{report['id']}/versions",
                      json={"kind": "addendum", "reason": "HER2 3+ by IHC"}), 201)
    sign(p, draft)
    assert len(listener.messages) == 2
    text = listener.messages[1]
    assert _segments(text, "OBR")[0][25] == "C"
    assert _segments(text, "OBR")[0][3] == _segments(listener.messages[0], "OBR")[0][3]  # same filler order
    assert [o[5] for o in _segments(text, "OBX") if o[3].startswith("35265-8")] == ["HER2 3+ by IHC"]
    assert [r.status for r in _rows(db)] == ["delivered", "delivered"]
