"""Public verification of a printed report's code.

Kept alone because it is the only report function reachable without logging in: what it returns
must never include clinical content or patient data.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathology_hub.domain import report_documents as docs
from pathology_hub.domain.reports.reading import latest_signed
from pathology_hub.models.reports import ReportVersion


def verify(session: Session, code: str) -> dict[str, Any] | None:
    """What the public verification page may say about a code: no clinical content, no patient data."""
    code = (code or "").strip().upper().replace(" ", "").replace("-", "")
    if not code or len(code) > 40:
        return None
    v = session.scalar(select(ReportVersion).where(ReportVersion.verification_code == code))
    if v is None:
        return None
    report = v.report
    checks = [docs.check_file(f) for f in docs.files_of(session, v)]
    ok = bool(checks) and all(c.ok for c in checks)
    sigs = docs.signatures_of(session, v)
    latest = latest_signed(report)
    return {
        "code": code, "result": "valid" if ok else "failed", "valid": ok,
        "version": v.number, "kind": v.kind, "status": v.status,
        "superseded": v.status == "superseded", "superseded_by": v.superseded_by_number,
        "superseded_at_text": f"{docs.local_time(v.superseded_at):%Y-%m-%d %H:%M:%S}" if v.superseded_at else None,
        "latest_version": latest.number if latest else v.number,
        "institution": report.consultation.receiving_institution.name if report.consultation.receiving_institution else "",
        "signatures": [{"role": s.role, "full_name": s.full_name, "institution": s.institution, "meaning": s.meaning,
                        "signed_at": docs.local_time(s.signed_at).replace(microsecond=0).isoformat(),
                        "signed_at_text": f"{docs.local_time(s.signed_at):%Y-%m-%d %H:%M:%S}", "timezone": s.timezone}
                       for s in sigs],
        "files": [{"kind": c.kind, "hash_ok": c.hash_ok, "signature_intact": c.intact, "signature_valid": c.valid}
                  for c in checks],
    }
