"""HL7 configuration from the environment (read per call so tests and operators can change it)."""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def sending_application() -> str:
    return os.environ.get("HL7_SENDING_APPLICATION") or "PATHOLOGY_HUB"


def sending_facility() -> str:
    """Empty: the signing pathologist's institution code is used."""
    return os.environ.get("HL7_SENDING_FACILITY", "")


def receiving_application() -> str:
    return os.environ.get("HL7_RECEIVING_APPLICATION") or "LIS"


def processing_id() -> str:
    return os.environ.get("HL7_PROCESSING_ID") or "P"


def pdf_max_bytes() -> int:
    """Signed PDFs up to this size travel inside the message (OBX ED, base64); larger ones as a link."""
    return _int("HL7_PDF_MAX_BYTES", 1_000_000)


def timeout_seconds() -> float:
    try:
        return float(os.environ.get("HL7_MLLP_TIMEOUT_SECONDS", "") or 10)
    except ValueError:
        return 10.0


def retry_base_seconds() -> float:
    return float(_int("HL7_RETRY_BASE_SECONDS", 30))


def retry_max_seconds() -> float:
    return float(_int("HL7_RETRY_MAX_SECONDS", 900))
