"""Consultation reports: drafting, key views, signing, immutability, new versions, delivery.

Lifecycle of one version (``ReportVersion.status``)::

    draft --sign--> signed --(a newer version is signed)--> superseded

* Drafts are edited by the consultation's assignee with optimistic locking: every update
  names the ``revision`` it was based on; a stale one answers 409 ``report_version_conflict``
  with the current content, so two open editors never overwrite each other silently.
* Signing re-checks the password, renders and PAdES-signs the PDF, then flips the row with
  one conditional ``UPDATE … WHERE id=? AND revision=? AND status='draft'``: of two
  concurrent sign requests exactly one matches a row (SQLite serialises writers, PostgreSQL
  re-evaluates the WHERE after the row lock), the other gets 409.  The consultation then
  moves to reported and the result is returned to the referring centre at once.  Nothing of
  the report is copied onto the consultation: every page reads the result in force from the
  versions (:mod:`pathology_hub.domain.results`).  Reading a report (page, PDF, FHIR) never
  acknowledges it; the clinician acknowledges a version explicitly (``consultations.acknowledge``).
* A signed version is immutable: every change attempt is refused (409 ``report_signed``) and
  audited (``report.edit_refused``).  Changes are new versions: an addendum (adds information;
  the diagnosis must stay as it was) or an amendment (changes the diagnosis; reason required).
  Signing version N+1 marks N superseded and stores an additional signed "superseded copy" of
  N (banner: superseded by N+1), served from then on; the original bytes and hash are kept.
  The chain goes back to "returned" (an acknowledgement of N does not cover N+1) and the
  referring clinician, the centre, the escalating pathologist and whoever acknowledged an
  earlier version are notified, in the app and by e-mail, with the change and its reason.
* A co-signature (another pathologist's concurrence) adds a manifest row and a re-rendered,
  re-signed PDF listing both signatures, kept next to the original (which stays verifiable).

Package layout (one job per module):

* :mod:`.reading` — which versions a user sees, the version in force, who is notified;
* :mod:`.errors` — the refusals (stable error codes) and which ones the web layer commits;
* :mod:`.guards` — the checks shared by every change to a draft;
* :mod:`.drafts` — creating a report, autosaving drafts, opening addenda and amendments;
* :mod:`.figures` — key views (figures) of slides and their magnification;
* :mod:`.signing` — signing, co-signing, superseding, with the login's password lock-out;
* :mod:`.delivery` — the signed PDF and the FHIR DiagnosticReport;
* :mod:`.verification` — the public verification of a printed code.

Callers keep using ``from pathology_hub.domain import reports; reports.sign(...)``: the public
names are re-exported here.
"""

from __future__ import annotations

from pathology_hub.domain.reports.delivery import FHIR_STATUS, fhir, imaging_study, pdf_of
from pathology_hub.domain.reports.drafts import KINDS, create, new_version, update_draft
from pathology_hub.domain.reports.errors import (ReportIntegrityFailed, ReportSigned, ReportVersionConflict,
                                                 SignerLocked, WrongPassword, commit_refusal)
from pathology_hub.domain.reports.figures import (CAPTION_LIMIT, MAX_FIGURES, MPP_AT_40X, add_figure,
                                                  delete_figure, figure, format_magnification,
                                                  native_magnification, view_bounds)
from pathology_hub.domain.reports.guards import TEXT_LIMIT
from pathology_hub.domain.reports.reading import (FIELDS, case_report_signed, clinicians_to_notify, current,
                                                  for_consultation, get, latest_signed, record_view,
                                                  signed_version_exists, version_by_number, version_json_fields,
                                                  visible_versions)
from pathology_hub.domain.reports.signing import COSIGN_MEANING, DEFAULT_MEANING, cosign, sign
from pathology_hub.domain.reports.verification import verify

__all__ = [
    "CAPTION_LIMIT", "COSIGN_MEANING", "DEFAULT_MEANING", "FHIR_STATUS", "FIELDS", "KINDS", "MAX_FIGURES",
    "MPP_AT_40X", "TEXT_LIMIT", "ReportIntegrityFailed", "ReportSigned", "ReportVersionConflict", "SignerLocked",
    "WrongPassword", "add_figure", "case_report_signed", "clinicians_to_notify", "commit_refusal", "cosign",
    "create", "current", "delete_figure", "fhir", "figure", "imaging_study", "for_consultation", "format_magnification", "get",
    "latest_signed", "native_magnification", "new_version", "pdf_of", "record_view", "sign",
    "signed_version_exists", "update_draft", "verify", "version_by_number", "version_json_fields", "view_bounds",
    "visible_versions",
]

