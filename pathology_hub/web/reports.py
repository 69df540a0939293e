"""Consultation reports over HTTP: the editor's JSON API, PDF and FHIR delivery, the report page
and the public verification page.  Handlers stay thin: :mod:`pathology_hub.domain.reports` decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from storage.errors import StorageUnavailable

from .. import runtime
from ..domain import lookup, report_codes
from ..domain import report_documents as docs
from ..domain import report_views as views
from ..domain import reports as svc
from ..domain.errors import ValidationFailed
from ..domain.view_links import normalise_view_link
from .authz import authorize, me
from .errors import error_response
from . import rate_limit
from .rate_limit import verify_form_limit, verify_limit
from .security import client_ip
from .serializers import iso
from .times import localtime
from . import error_messages
from .errors import message_of

if TYPE_CHECKING:
    from ..models import Case, User
    from ..models.consultations import Consultation
    from ..models.reports import Report, ReportVersion

bp = Blueprint("reports", __name__)
_report = lookup.loader("report", "report_id")
_case = lookup.loader("case", "case_id")
_consultation = lookup.loader("consultation", "consultation_id")

KIND_LABELS = {"original": _l("original report"), "addendum": _l("addendum"), "amendment": _l("amendment")}
STATUS_LABELS = {"draft": _l("draft"), "signed": _l("signed"), "superseded": _l("superseded")}
#: The stored PDFs of a version (verification page): the one signed, and the copy stamped when it was replaced.
FILE_KIND_LABELS = {"original": _l("signed PDF"), "superseded": _l("copy stamped superseded")}


def code_name(v: Any) -> str:
    """A version's diagnosis code name in the reader's language (the list's name; else the stored one)."""
    from .i18n import select_locale
    field = (lambda name: v.get(name) or "") if isinstance(v, dict) else (lambda name: getattr(v, name) or "")
    return report_codes.display_name(field("diagnosis_code_system"), field("diagnosis_code"),
                                     field("diagnosis_code_display"), select_locale())



def _data() -> dict[str, Any]:
    data = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return data


def _revision(data: dict[str, Any]) -> Any:
    """The draft revision a change is based on: ``revision`` (alias ``version``) or the ``If-Match`` header."""
    for key in ("revision", "version"):
        if key in data:
            return data[key]
    return request.headers.get("If-Match")


@bp.errorhandler(svc.ReportSigned)
@bp.errorhandler(svc.WrongPassword)
@bp.errorhandler(svc.SignerLocked)
def audited_refusal(exc):
    """The refusal was audited (and a wrong password counted toward the lock-out); the domain's unit
    of work committed that record (``report_views``): answer."""
    if isinstance(exc, svc.SignerLocked):
        minutes = exc.details.get("retry_after_minutes", 1)
        resp = make_response(error_response(exc.status, exc.code, _(
            "Too many wrong passwords: your account is locked for %(minutes)s minutes and cannot sign until then.",
            minutes=minutes), exc.details))
        resp.headers["Retry-After"] = str(int(minutes) * 60)
        return resp
    return error_response(exc.status, exc.code, message_of(exc), exc.details)


@bp.errorhandler(svc.ReportIntegrityFailed)
def integrity_refusal(exc):
    """A stored PDF that no longer matches its signature (the audit entry is committed by the domain):
    refuse in the user's language."""
    return error_response(exc.status, exc.code, integrity_message(refused=True), exc.details)


STORAGE_RETRY_AFTER_SECONDS = 30


@bp.errorhandler(StorageUnavailable)
def storage_unavailable(exc: StorageUnavailable):
    """The object store is unreachable: nothing of this request was kept (the domain's unit of work
    rolled back, so a signature never exists without its stored PDF and the draft is untouched)."""
    if request.endpoint in ("reports.api_sign", "reports.api_cosign"):
        message = _("The report was not signed: the document store cannot be reached right now. Nothing was "
                    "changed, your draft is kept, and your password was not counted as wrong. Sign again in a "
                    "minute.")
    else:
        message = _("The document store cannot be reached right now; nothing was changed. Try again in a minute.")
    resp = make_response(error_response(503, exc.code, message, {"retry_after_seconds": STORAGE_RETRY_AFTER_SECONDS}))
    resp.headers["Retry-After"] = str(STORAGE_RETRY_AFTER_SECONDS)
    return resp


def integrity_message(refused: bool = False) -> str:
    """The warning on pages (``refused=False``) and the refusal of a download or export."""
    if refused:
        return _("The stored PDF of this report no longer matches the signed document (it was altered or "
                 "damaged in storage), so it is not delivered. Do not rely on any copy of it; the administrator "
                 "must restore the signed file. This refusal has been recorded in the audit log.")
    return _("The stored PDF of this report no longer matches the signed document (it was altered or damaged in "
             "storage), so it is not delivered. Do not rely on any copy of it; the administrator must restore "
             "the signed file.")


# ---------------------------------------------------------------- JSON shapes
def version_json(v: ReportVersion, report: Report) -> dict[str, Any]:
    parts = views.version_parts(v)
    sigs = parts.signatures
    data = {
        "number": v.number, "kind": v.kind, "status": v.status, "reason": v.reason, "revision": v.revision,
        **svc.version_json_fields(v), "diagnosis_code_name": code_name(v),
        "created_at": iso(v.created_at), "updated_at": iso(v.updated_at), "signed_at": iso(v.signed_at),
        "signed_by": v.signed_by.full_name if v.signed_by else None,
        "superseded_by": v.superseded_by_number, "superseded_at": iso(v.superseded_at),
        "superseded_at_text": localtime(v.superseded_at) or None,
        "verification_code": v.verification_code,
        "verification_url": url_for("reports.verify_code", code=v.verification_code) if v.verification_code else None,
        "signatures": [{"role": s.role, "full_name": s.full_name, "institution": s.institution, "meaning": s.meaning,
                        "signed_at": docs.local_time(s.signed_at).replace(microsecond=0).isoformat(),
                        "signed_at_text": localtime(s.signed_at, seconds=True), "timezone": s.timezone} for s in sigs],
        "figures": [{"id": f.id, "slide_id": f.slide_id, "caption": f.caption, "view_link": _safe_link(f.view_link, report),
                     "magnification": f.magnification,
                     "image_url": url_for("reports.api_figure_image", report_id=report.id, figure=f.id)}
                    for f in parts.figures],
        "pdf_url": (url_for("reports.api_version_pdf", report_id=report.id, number=v.number)
                    if v.status != "draft" else None),
    }
    if parts.failed_files is not None:
        data["integrity"] = {"ok": not parts.failed_files, "failed_files": parts.failed_files}
    return data


def _safe_link(link: str, report: Report) -> str | None:
    """Figure links stored before links were parsed on capture are checked again before becoming a link."""
    return normalise_view_link(link, case_id=report.case_id, base_url=runtime.settings().base_url) if link else None


def _preliminary_by(c: Consultation) -> str:
    """Who wrote the preliminary opinion an escalation carries: the district pathologist, at the district."""
    if c.parent_id is None or not c.preliminary_opinion:
        return ""
    return f"{c.created_by.full_name} · {c.requesting_institution.name}"


def report_json(report: Report, user: User) -> dict[str, Any]:
    versions = svc.visible_versions(user, report)
    c = report.consultation
    version_items = [version_json(v, report) for v in versions]
    return {
        "id": report.id, "consultation_id": c.id, "case_id": report.case_id, "case_number": c.case.case_number,
        "consultation_state": c.state.value, "question": c.question,
        "preliminary_opinion": c.preliminary_opinion if c.parent_id else "",
        "preliminary_opinion_by": _preliminary_by(c),
        "versions": version_items,
        "current": version_items[-1] if version_items else None,
        "can": views.allowed_actions(user, report).as_json(),
        "integrity_ok": all(v.get("integrity", {}).get("ok", True) for v in version_items),
        "url": url_for("reports.report_page", report_id=report.id),
        "pdf_url": url_for("reports.api_pdf", report_id=report.id) if svc.latest_signed(report) else None,
        "fhir_url": url_for("reports.api_fhir", report_id=report.id) if svc.latest_signed(report) else None,
    }


def _with_etag(payload: dict[str, Any], status: int = 200, report: Report | None = None) -> Response:
    resp = jsonify(payload)
    resp.status_code = status
    if report is not None:
        resp.headers["ETag"] = f'"{svc.current(report).revision}"'
    return resp


# ---------------------------------------------------------------- API: reading and drafting
@bp.route("/api/v1/report-codes")
@authorize("worklist.view")
def api_codes():
    """The diagnosis codes a report may carry (``REPORT_CODES_FILE``).
    ---
    get:
      summary: List the configured diagnosis codes
    """
    from .i18n import select_locale
    locale = select_locale()
    return jsonify({"codes": [{**c.as_json(), "name": c.name_in(locale)} for c in report_codes.codes()]})


@bp.route("/api/v1/cases/<int:case_id>/reports")
@authorize("case.view", load=_case, as_arg="case")
def api_case_reports(case: Case):
    """The consultations of a case with their reports (what the viewer's report panel shows).
    ---
    get:
      summary: Reports of a case, per consultation
    """
    user = me()
    items = []
    for row in views.case_reports(user, case):
        c, report = row.consultation, row.report
        items.append({"consultation_id": c.id, "state": c.state.value, "parent_id": c.parent_id,
                      "assignee": c.assignee.full_name if c.assignee else None, "can_create": row.can_create,
                      "report": report_json(report, user) if report is not None else None})
    return jsonify({"consultations": items})


@bp.route("/api/v1/consultations/<int:consultation_id>/report", methods=["GET"])
@authorize("consultation.view", load=_consultation, as_arg="c")
def api_consultation_report(c: Consultation):
    """The report of a consultation (404 ``report_not_found`` when none is visible yet).
    ---
    get:
      summary: Get a consultation's report
    """
    report = views.open_for_consultation(me(), c, ip=client_ip())
    if report is None:
        return error_response(404, "report_not_found", error_messages.render("report_not_found"))
    return _with_etag(report_json(report, me()), report=report)


@bp.route("/api/v1/consultations/<int:consultation_id>/report", methods=["POST"])
@authorize("consultation.view", load=_consultation, as_arg="c")
def api_create(c: Consultation):
    """Start the report (the assigned pathologist, consultation in review).
    ---
    post:
      summary: Create a report draft
      responses:
        201: {description: created}
        409: {description: report_exists or invalid_state}
    """
    report = views.start(me(), c, ip=client_ip())
    return _with_etag(report_json(report, me()), 201, report)


@bp.route("/api/v1/reports/<int:report_id>", methods=["GET"])
@authorize("report.view", load=_report, as_arg="report")
def api_get(report: Report):
    """A report with its visible versions, signatures and figures.
    ---
    get:
      summary: Get a report
    """
    views.record_view(me(), report, ip=client_ip())
    return _with_etag(report_json(report, me()), report=report)


@bp.route("/api/v1/reports/<int:report_id>", methods=["PUT"])
@authorize("report.view", load=_report, as_arg="report")
def api_update(report: Report):
    """Autosave the draft. Send the revision it is based on (``revision`` or ``If-Match``);
    a stale one answers 409 ``report_version_conflict`` with the current content; a signed
    version answers 409 ``report_signed`` (and the attempt is audited).
    ---
    put:
      summary: Update the report draft (optimistic locking)
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {revision: {type: integer}, specimen: {type: string}, gross_description: {type: string}, microscopic_description: {type: string}, diagnosis: {type: string}, diagnosis_code: {type: string}, diagnosis_code_system: {type: string}, comment: {type: string}, recommendations: {type: string}, answer_to_question: {type: string}}}
    """
    data = _data()
    views.save_draft(me(), report, data, revision=_revision(data), ip=client_ip())
    return _with_etag(report_json(report, me()), report=report)


@bp.route("/api/v1/reports/<int:report_id>/figures", methods=["POST"])
@authorize("report.view", load=_report, as_arg="report")
def api_add_figure(report: Report):
    """Capture a key view: the server renders the region from the pyramid with the visible annotations.
    ---
    post:
      summary: Add a figure to the draft
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [slide_id, x, y, zoom, container_width, container_height], properties: {slide_id: {type: integer}, x: {type: number}, y: {type: number}, zoom: {type: number}, rotation: {type: number}, container_width: {type: number}, container_height: {type: number}, caption: {type: string}, url: {type: string}, magnification: {type: number, description: the magnification the viewer showed}}}
    """
    figure_id = views.add_figure(me(), report, _data(), ip=client_ip())
    payload = report_json(report, me())
    payload["figure_id"] = figure_id
    return _with_etag(payload, 201, report)


@bp.route("/api/v1/reports/<int:report_id>/figures/<int:figure>.png")
@authorize("report.view", load=_report, as_arg="report")
def api_figure_image(report: Report, figure: int):
    """The rendered figure image.
    ---
    get:
      summary: Figure PNG
    """
    resp = Response(views.figure_image(me(), report, figure), mimetype="image/png")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.route("/api/v1/reports/<int:report_id>/figures/<int:figure>", methods=["DELETE"])
@authorize("report.view", load=_report, as_arg="report")
def api_delete_figure(report: Report, figure: int):
    """Remove a figure from the draft (refused and audited on a signed version).
    ---
    delete:
      summary: Delete a figure
    """
    views.delete_figure(me(), report, figure, ip=client_ip())
    return _with_etag(report_json(report, me()), report=report)


# ---------------------------------------------------------------- API: signing and versions
@bp.route("/api/v1/reports/<int:report_id>/sign", methods=["POST"])
@authorize("report.view", load=_report, as_arg="report")
def api_sign(report: Report):
    """Sign the draft with the password (the assignee). 401 ``invalid_password``; 409 when another
    request signed it first or it changed since ``revision``.
    ---
    post:
      summary: Sign the report
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [password, revision], properties: {password: {type: string}, revision: {type: integer}, meaning: {type: string}}}
    """
    data = _data()
    views.sign(me(), report, password=data.get("password"), revision=_revision(data), meaning=data.get("meaning"),
               ip=client_ip())
    return _with_etag(report_json(report, me()), report=report)


@bp.route("/api/v1/reports/<int:report_id>/cosign", methods=["POST"])
@authorize("report.view", load=_report, as_arg="report")
def api_cosign(report: Report):
    """Record a second pathologist's concurrence with the signed version (password required).
    ---
    post:
      summary: Co-sign the report
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [password], properties: {password: {type: string}, meaning: {type: string}}}
    """
    data = _data()
    views.cosign(me(), report, password=data.get("password"), meaning=data.get("meaning"), ip=client_ip())
    return _with_etag(report_json(report, me()), report=report)


@bp.route("/api/v1/reports/<int:report_id>/versions", methods=["POST"])
@authorize("report.view", load=_report, as_arg="report")
def api_new_version(report: Report):
    """Start an addendum or an amendment (reason required) on top of the signed report.
    ---
    post:
      summary: New report version
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [kind], properties: {kind: {type: string, enum: [addendum, amendment]}, reason: {type: string}}}
    """
    data = _data()
    views.new_version(me(), report, data.get("kind"), data.get("reason"), ip=client_ip())
    return _with_etag(report_json(report, me()), 201, report)


# ---------------------------------------------------------------- delivery
def _pdf_response(data: bytes, name: str) -> Response:
    resp = Response(data, mimetype="application/pdf")
    disposition = "inline" if request.args.get("inline") else "attachment"
    resp.headers["Content-Disposition"] = f'{disposition}; filename="{name}"'
    return resp


@bp.route("/api/v1/reports/<int:report_id>/pdf")
@authorize("report.view", load=_report, as_arg="report")
def api_pdf(report: Report):
    """The signed PDF of the latest signed version (the requesting clinician's first download acknowledges).
    ---
    get:
      summary: Download the signed report PDF
    """
    data, name = views.pdf(me(), report, ip=client_ip())
    return _pdf_response(data, name)


@bp.route("/api/v1/reports/<int:report_id>/versions/<int:number>/pdf")
@authorize("report.view", load=_report, as_arg="report")
def api_version_pdf(report: Report, number: int):
    """The PDF of one version: its superseded copy once a newer version exists (``original=1`` for the
    originally signed bytes).
    ---
    get:
      summary: Download one version's PDF
      parameters:
        - {name: original, in: query, schema: {type: boolean}}
    """
    data, name = views.pdf(me(), report, number, original=request.args.get("original") in ("1", "true"),
                           ip=client_ip())
    return _pdf_response(data, name)


@bp.route("/api/v1/reports/<int:report_id>/fhir")
@authorize("report.view", load=_report, as_arg="report")
def api_fhir(report: Report):
    """The report as an HL7 FHIR R4 DiagnosticReport (status final, amended or appended).
    ---
    get:
      summary: FHIR DiagnosticReport
      description: >
        The latest signed version with the PDF as presentedForm, `imagingStudy` referencing the case's
        ImagingStudy (…/fhir/ImagingStudy) and, for an amendment or addendum, the extension
        diagnosticReport-replaces (or diagnosticReport-addendumOf) whose valueReference is the previous
        version's URL (…/fhir/_history/{number}).
    """
    return _fhir_response(views.fhir(me(), report, ip=client_ip()))


def _fhir_response(resource: dict) -> Response:
    resp = jsonify(resource)
    resp.mimetype = "application/fhir+json"
    return resp


@bp.route("/api/v1/reports/<int:report_id>/fhir/_history/<int:number>")
@authorize("report.view", load=_report, as_arg="report")
def api_fhir_version(report: Report, number: int):
    """One signed version as an HL7 FHIR R4 DiagnosticReport (the target of an amendment's link).
    ---
    get:
      summary: FHIR DiagnosticReport of one signed version
      responses:
        200: {description: 'DiagnosticReport; meta.versionId is the version number'}
        404: {description: no such signed version (code report_not_signed)}
    """
    return _fhir_response(views.fhir(me(), report, ip=client_ip(), number=number))


@bp.route("/api/v1/reports/<int:report_id>/fhir/ImagingStudy")
@authorize("report.view", load=_report, as_arg="report")
def api_fhir_imaging_study(report: Report):
    """The case's images as an HL7 FHIR R4 ImagingStudy, for whoever may read the signed report.
    ---
    get:
      summary: FHIR ImagingStudy of the report's case
      description: >
        identifier urn:dicom:uid = urn:oid:{Study Instance UID}; one series (modality SM) per ready slide with
        its Series Instance UID; a contained Endpoint (connectionType dicom-wado-rs) whose address is
        BASE_URL + /dicomweb, referenced from the study and every series.
      responses:
        200: {description: ImagingStudy (application/fhir+json)}
        404: {description: report not signed or not visible (code report_not_signed)}
    """
    return _fhir_response(views.imaging_study(me(), report, ip=client_ip()))


# ---------------------------------------------------------------- pages
@bp.route("/reports/<int:report_id>")
@authorize("report.view", load=_report, as_arg="report")
def report_page(report: Report):
    """The report for reading: every visible version, its signatures and downloads."""
    user = me()
    views.record_view(user, report, what="page", ip=client_ip())
    data = report_json(report, user)
    return render_template("report_view.html", report=report, data=data,
                           kind_label=lambda k: KIND_LABELS.get(k, k), status_label=lambda s: STATUS_LABELS.get(s, s))


@bp.route("/verify")
@verify_form_limit
def verify():
    """Public: a form for the verification code printed (and QR-encoded) on every report."""
    code = (request.args.get("code") or "").strip()
    if code:
        return redirect(url_for("reports.verify_code", code=code))
    return render_template("report_verify.html", result=None, code="", searched=False)


@bp.route("/verify/<code>")
@verify_limit
def verify_code(code: str):
    """Public: does this code match a signed report, which version, who signed, superseded? No clinical content."""
    found = views.verify(code)
    result = found.result
    if result and found.superseded_at:  # the page's one time form, with the offset
        result["superseded_at_text"] = localtime(found.superseded_at, seconds=True)
    return render_template("report_verify.html", result=result, code=code, searched=True,
                           kind_label=lambda k: KIND_LABELS.get(k, k)), (200 if result else 404)


@bp.route("/api/v1/verify/<code>")
@verify_limit
def api_verify(code: str):
    """Public: the verification result as JSON (404 ``unknown_code``).
    ---
    get:
      summary: Verify a report code
    """
    result = views.verify(code).result
    if result is None:
        return error_response(404, "unknown_code", error_messages.render("unknown_code"))
    return jsonify(result)


def _report_for(c: Consultation) -> Report | None:
    user = me()
    if not user.is_authenticated:
        return None
    return views.report_for(user, c)


def _integrity_failed(report: Report | int | None) -> bool:
    """For pages that link to a report (or its id): does a visible signed version's stored PDF fail its hash check?"""
    user = me()
    if report is None or not user.is_authenticated:
        return False
    return views.integrity_failed(user, report)


def init_app(app: Flask) -> None:
    rate_limit.init_app(app)
    app.register_blueprint(bp)
    app.add_template_global(_report_for, "report_for_consultation")
    app.add_template_global(_integrity_failed, "report_integrity_failed")
    app.add_template_global(integrity_message, "report_integrity_message")
    app.add_template_global(lambda s: STATUS_LABELS.get(s, s), "report_status_label")
    app.add_template_global(lambda k: KIND_LABELS.get(k, k), "report_kind_label")
    app.add_template_global(lambda k: FILE_KIND_LABELS.get(k, k), "report_file_kind_label")
    app.add_template_global(code_name, "diagnosis_code_name")
