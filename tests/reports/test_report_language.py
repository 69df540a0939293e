"""A signed report is printed in the referring institution's language, whatever the signer's
screen language; a refused signature is explained in the signer's language."""

from __future__ import annotations

import subprocess

from pathology_hub.models import Institution, User
from tests.conftest import require
from tests.reports.conftest import DRAFT, save, sign, start_report


def _text(tmp_path, data: bytes) -> str:
    import shutil
    require(shutil.which("pdftotext") is not None, "pdftotext (poppler-utils) is not installed")
    (tmp_path / "r.pdf").write_bytes(data)
    return subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_pdf_language_follows_the_referring_institution(client_for, scenario, db, users, tmp_path):
    case_inst = db.get(Institution, users["tech"].institution_id)
    case_inst.report_language = "en"
    db.get(User, users["pathologist"].id).locale = "zh_CN"  # the signer reads Chinese
    db.commit()
    p = client_for("pathologist")
    report = save(p, start_report(p, scenario.consultation_id), DRAFT)
    refused = p.post(f"/api/v1/reports/{report['id']}/sign", json={"password": "wrong-password-1",
                                                                   "revision": report["current"]["revision"]})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "invalid_password"
    assert refused.json["error"]["message"] == "密码不正确，报告未签发。"
    signed = sign(p, report)
    pdf = p.get(f"/api/v1/reports/{signed['id']}/pdf")
    assert pdf.status_code == 200
    text = _text(tmp_path, pdf.data)
    assert "Signature manifest" in text and "Patient and case" in text and "签名清单" not in text
