"""The ORU^R01 (HL7 v2.5.1) of one signed report version, built and validated with hl7apy.

* PID carries only the case's pseudonymised identifier (PID-3, and PID-5 as a pseudo-name of
  name type "S", HL7 table 0200, because PID-5 is required): never the patient's name.
* OBR-25 / OBX-11: F for the first signed version, C for an amendment and for an addendum
  (v2 has no "appended" status; the LIS replaces the result and the addendum is an OBX).
* The signed PDF is an OBX of type ED (base64) up to ``HL7_PDF_MAX_BYTES``, else an RP link.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass

from pathology_hub.domain import report_codes
from pathology_hub.domain.hl7 import settings as cfg
from pathology_hub.models import Institution, as_utc
from pathology_hub.models.reports import ReportVersion

#: v2 coding-system names (table 0396) of the code lists the report editor offers.
CODING_SYSTEMS = {"ICD-O-3": "ICDO3", "SNOMED CT": "SCT", "SNOMED-CT": "SCT", "ICD-10": "I10"}

#: LOINC codes of the report's sections (the "Path report.*" panel).
SECTIONS = (
    ("specimen", "22633-2", "Path report.site of origin"),
    ("gross_description", "22634-0", "Path report.gross observation"),
    ("microscopic_description", "22635-7", "Path report.microscopic observation"),
    ("diagnosis", "22637-3", "Path report.final diagnosis"),
    ("comment", "22638-1", "Path report.comments"),
    ("recommendations", "22638-1", "Path report.comments"),
)


def result_status(v: ReportVersion) -> str:
    return "F" if v.kind == "original" or v.number == 1 else "C"


def escape(text: str) -> str:
    """ER7 escaping of free text (the delimiters of MSH-2, then line breaks as \\.br\\)."""
    out = (text.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\")
           .replace("&", "\\T\\").replace("~", "\\R\\"))
    return out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\.br\\")


def _ts(value: dt.datetime | None) -> str:
    return as_utc(value).strftime("%Y%m%d%H%M%S+0000") if value else ""


@dataclass(frozen=True)
class Built:
    control_id: str
    result_status: str
    text: str  # ER7, segments separated by \r


def build(v: ReportVersion, *, receiver: Institution, control_id: str, pdf: bytes, pdf_url: str,
          now: dt.datetime) -> Built:
    from hl7apy.core import Message
    report = v.report
    case = report.consultation.case
    signer = v.signed_by
    status = result_status(v)
    m = Message("ORU_R01", version="2.5.1")
    m.msh.msh_3 = escape(cfg.sending_application())
    m.msh.msh_4 = escape(cfg.sending_facility() or (signer.institution.code if signer else ""))
    m.msh.msh_5 = escape(cfg.receiving_application())
    m.msh.msh_6 = escape(receiver.code)
    m.msh.msh_7 = _ts(now)
    m.msh.msh_9 = "ORU^R01^ORU_R01"
    m.msh.msh_10 = control_id
    m.msh.msh_11 = cfg.processing_id()
    m.msh.msh_12 = "2.5.1"
    m.msh.msh_18 = "UNICODE UTF-8"
    result = m.add_group("ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    patient.pid.pid_1 = "1"
    pseudo = escape(case.patient_pseudo_id)
    patient.pid.pid_3 = f"{pseudo}^^^{escape(case.institution.code)}^PI"
    patient.pid.pid_5 = f"{pseudo}^^^^^^S"
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    order.obr.obr_1 = "1"
    order.obr.obr_2 = escape(case.case_number)
    order.obr.obr_3 = f"R{report.id}^{escape(cfg.sending_application())}"
    order.obr.obr_4 = "11526-1^Pathology study^LN"
    order.obr.obr_7 = _ts(case.created_at)
    order.obr.obr_22 = _ts(v.signed_at)
    order.obr.obr_25 = status
    if signer is not None:
        order.obr.obr_32 = f"{signer.id}&{escape(signer.full_name)}"
    n = 0

    def obx(value_type: str, code: str, value: str) -> None:
        nonlocal n
        n += 1
        seg = order.add_group("ORU_R01_OBSERVATION").obx
        seg.obx_1 = str(n)
        seg.obx_2 = value_type
        seg.obx_3 = code
        seg.obx_5 = value
        seg.obx_11 = status
        seg.obx_14 = _ts(v.signed_at)

    for field, loinc, name in SECTIONS:
        text = (getattr(v, field) or "").strip()
        if text:
            obx("TX", f"{loinc}^{name}^LN", escape(text))
    if v.diagnosis_code:
        system = CODING_SYSTEMS.get(v.diagnosis_code_system, v.diagnosis_code_system)
        display = v.diagnosis_code_display or report_codes.display_name(
            v.diagnosis_code_system, v.diagnosis_code, "", "en")
        obx("CWE", "22637-3^Path report.final diagnosis^LN",
            f"{escape(v.diagnosis_code)}^{escape(display)}^{escape(system)}")
    if v.kind in ("amendment", "addendum") and v.reason.strip():
        label = "Amendment reason" if v.kind == "amendment" else "Path report.addendum"
        code = "AMENDREASON^Amendment reason^L" if v.kind == "amendment" else f"35265-8^{label}^LN"
        obx("TX", code, escape(v.reason.strip()))
    if len(pdf) <= cfg.pdf_max_bytes():
        obx("ED", "PDF^Signed report PDF^L", "^AP^PDF^Base64^" + base64.b64encode(pdf).decode("ascii"))
    else:
        obx("RP", "PDF^Signed report PDF^L", f"{escape(pdf_url)}^{escape(cfg.sending_application())}^AP^PDF")
    m.validate()
    return Built(control_id, status, m.to_er7())
