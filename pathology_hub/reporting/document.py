"""The data a report PDF shows: a plain, immutable snapshot built by the domain layer.

Keeping this a dataclass (no ORM objects) means the PDF is a pure function of what
was signed, so re-rendering an old version can never pick up later edits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Figure:
    """A key view: a PNG/JPEG rendered from the pyramid with annotations drawn on it."""

    image: bytes              # encoded PNG or JPEG
    caption: str
    view_link: str            # absolute URL back to that exact view in the viewer
    slide_label: str = ""     # e.g. "A1 H&E"
    magnification: str = ""   # e.g. "10×"


@dataclass(frozen=True)
class SlideEntry:
    """One slide of the case as examined: label, block/part and stain (category + marker/stain name)."""

    label: str
    block_label: str = ""
    stain_category: str = ""  # he | ihc | special | fluorescence | multiplex | "" (unclassified)
    stain_name: str = ""      # e.g. "Ki-67"; "" for plain H&E
    uid: str = ""


@dataclass(frozen=True)
class Signature:
    """The signature manifest: who signed, for whom, when, and what the signature means."""

    full_name: str
    institution: str
    signed_at: dt.datetime    # timezone-aware
    meaning: str              # e.g. "diagnosis approved" / "诊断已批准"
    role: str = "signer"      # "signer" or "co-signer"


@dataclass(frozen=True)
class VersionEntry:
    """One line of the version history printed in every PDF."""

    number: int
    kind: str                 # "original" | "addendum" | "amendment"
    signed_at: dt.datetime | None
    signer: str
    reason: str = ""
    superseded: bool = False


@dataclass(frozen=True)
class ReportDocument:
    """Everything printed on one signed version of a consultation report."""

    # header
    institution_name: str                 # the signing institution
    institution_address: str = ""
    title: str = "Pathology consultation report / 病理会诊报告"
    # patient and case
    case_number: str = ""
    patient_id: str = ""                  # pseudonymised identifier
    patient_name: str = ""                # optional; may be empty
    sex: str = ""
    age: str = ""
    requesting_institution: str = ""
    requesting_clinician: str = ""
    specimen_type: str = ""
    specimen_site: str = ""
    clinical_history: str = ""
    clinical_question: str = ""
    priority: str = ""
    # structured fields
    specimen: str = ""
    gross_description: str = ""
    microscopic_description: str = ""
    diagnosis: str = ""
    diagnosis_code: str = ""              # e.g. "8140/3"
    diagnosis_code_system: str = ""       # e.g. "ICD-O-3"
    diagnosis_code_display: str = ""
    comment: str = ""
    recommendations: str = ""
    answer_to_question: str = ""
    preliminary_opinion: str = ""         # district pathologist's opinion when escalated
    preliminary_opinion_by: str = ""
    # evidence
    figures: tuple[Figure, ...] = ()
    slides: tuple[SlideEntry, ...] = ()   # the case's slides (stain and block as set before submission)
    # signing and versions
    version: int = 1
    version_kind: str = "original"        # "original" | "addendum" | "amendment"
    amendment_reason: str = ""
    signatures: tuple[Signature, ...] = ()
    history: tuple[VersionEntry, ...] = ()
    superseded_by: int | None = None      # newer version number, when one exists at render time
    verification_code: str = ""
    verification_url: str = ""            # absolute URL encoded in the QR code
    language: str = "zh"                  # "zh" or "en": labels; content is printed as typed
    extra: dict[str, str] = field(default_factory=dict)
