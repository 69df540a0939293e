"""Signed report PDFs are handed out only as they were signed.

Every ``ReportFile`` keeps the SHA-256 of the bytes that were signed. A download or a
FHIR export re-hashes the bytes it is about to serve (it reads them all anyway, so the
hash costs one pass over a few MB) and refuses on a mismatch: a tampered or corrupted
PDF is never delivered as if it were the signed report, and the refusal is audited.

Pages that only *show* a report (report page, consultation page) must warn about the
same thing without re-reading every PDF on every view, so results are remembered per
process, keyed by the object's storage fingerprint (size, ETag, modification time) and
re-checked at most every ``RECHECK_SECONDS`` even when the fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from sqlalchemy.orm import Session

from storage.errors import ObjectNotFound, StorageError

from .. import runtime
from ..models import User
from ..models.reports import Report, ReportFile, ReportVersion
from . import audit
from .errors import Conflict

log = logging.getLogger("pathology_hub.reports")

RECHECK_SECONDS = 600.0
CACHE_ENTRIES = 4096

_lock = threading.Lock()
#: storage key -> (fingerprint, monotonic time of the check, bytes matched the recorded hash)
_checked: OrderedDict[str, tuple[tuple, float, bool]] = OrderedDict()


class ReportIntegrityFailed(Conflict):
    """The stored PDF no longer hashes to what was signed: it is not served (audited)."""

    code = "report_integrity_failed"


def _fingerprint(key: str) -> tuple:
    info = runtime.store().stat(key)
    return (info.size, info.etag, info.last_modified)


def _remember(key: str, fingerprint: tuple, ok: bool) -> None:
    with _lock:
        _checked[key] = (fingerprint, time.monotonic(), ok)
        _checked.move_to_end(key)
        while len(_checked) > CACHE_ENTRIES:
            _checked.popitem(last=False)


def forget() -> None:
    """Drop every remembered result (tests; an operator restoring files need not wait)."""
    with _lock:
        _checked.clear()


def read_verified(session: Session, f: ReportFile, report: Report, version: ReportVersion, *,
                  actor: User | None, purpose: str, ip: str | None = None) -> bytes:
    """The stored bytes of ``f``, or :class:`ReportIntegrityFailed` (audited) when they changed."""
    data = runtime.store().get_bytes(f.storage_key)
    actual = hashlib.sha256(data).hexdigest()
    ok = actual == f.sha256 and len(data) == f.size
    try:
        _remember(f.storage_key, _fingerprint(f.storage_key), ok)
    except StorageError:
        pass  # only the page cache misses out; the decision below stands on the bytes read
    if not ok:
        log.error("signed report PDF does not match its recorded hash",
                  extra={"report_id": report.id, "version": version.number, "file": f.kind,
                         "storage_key": f.storage_key, "purpose": purpose})
        audit.record(session, "report.integrity_failed", actor=actor, object_type="report", object_id=report.id,
                     case_id=report.case_id, ip=ip,
                     details={"version": version.number, "file": f.kind, "purpose": purpose,
                              "expected_sha256": f.sha256, "actual_sha256": actual,
                              "expected_size": f.size, "actual_size": len(data)})
        raise ReportIntegrityFailed(
            "The stored PDF of this report no longer matches the signed document, so it is not served. "
            "The administrator has been notified through the audit log; the signed content must be restored.",
            details={"version": version.number, "file": f.kind})
    return data


def file_intact(f: ReportFile) -> bool | None:
    """Whether ``f`` still hashes to its recorded SHA-256 (remembered); None when it cannot be read now."""
    try:
        fingerprint = _fingerprint(f.storage_key)
    except ObjectNotFound:
        return False
    except StorageError:
        return None
    with _lock:
        entry = _checked.get(f.storage_key)
    if entry is not None and entry[0] == fingerprint and time.monotonic() - entry[1] < RECHECK_SECONDS:
        return entry[2]
    try:
        data = runtime.store().get_bytes(f.storage_key)
    except ObjectNotFound:
        return False
    except StorageError:
        return None
    ok = hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.size
    _remember(f.storage_key, fingerprint, ok)
    return ok


def version_problems(files: list[ReportFile]) -> list[str]:
    """The kinds of the version's stored PDFs that fail their hash check (empty when all pass or are unknown)."""
    return [f.kind for f in files if file_intact(f) is False]


def report_problems(session: Session, versions: list[ReportVersion]) -> dict[int, list[str]]:
    """Version number -> failing file kinds, for the signed versions given."""
    from .report_documents import files_of
    out: dict[int, list[str]] = {}
    for v in versions:
        if v.status == "draft":
            continue
        bad = version_problems(files_of(session, v))
        if bad:
            out[v.number] = bad
    return out


def describe(problems: dict[int, list[str]]) -> dict[str, Any]:
    return {"ok": not problems, "failed_versions": sorted(problems)}
