"""Cases, as pages for technicians, pathologists and clinicians and as JSON (``/api/v1/cases``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf
from flask_babel import gettext as _

from ..domain import cases as case_service
from ..domain import lookup, policy
from ..domain import slides as slide_service
from ..domain.errors import DomainError
from .authz import authorize, me
from . import ingest_text
from .bundle_strings import upload_strings
from .errors import flash_error
from .request_json import json_body
from .security import client_ip
from .serializers import case_json

if TYPE_CHECKING:
    from ..models import Case

bp = Blueprint("cases", __name__)


def _form_page(form: dict) -> str:
    return render_template("case_form.html", form=form, Priority=case_service.PRIORITIES, Sex=case_service.SEXES,
                           clinicians=case_service.clinicians_of(me()))


@bp.route("/cases/new", methods=["GET", "POST"])
@authorize("case.create")
def new_case():
    form = request.form.to_dict() if request.method == "POST" else {}
    if request.method == "POST":
        try:
            case = case_service.open_case(me(), form, ip=client_ip())
        except DomainError as exc:
            flash_error(exc)
            return _form_page(form), exc.status
        flash(_("Case %(number)s created.", number=case.case_number), "success")
        return redirect(url_for("cases.detail", case_id=case.id))
    return _form_page(form)


def qc_message(warning: dict) -> str:
    messages = {"missing_mpp": _("No microns-per-pixel recorded: measurements and the scale bar will be unavailable."),
                "low_tissue": _("Very little tissue detected on the slide."),
                "blurry": _("The scan looks out of focus.")}
    return messages.get(warning.get("code")) or ingest_text.qc_text(warning) or warning.get("message", "")


@bp.route("/cases/<int:case_id>")
@authorize("case.view", load=lookup.loader("case", "case_id"), as_arg="case")
def detail(case: Case):
    user = me()
    can_upload = policy.can(user, "slide.upload", case)
    upload_config = None
    if can_upload:
        upload_config = {
            "endpoint": url_for("tus.collection"), "caseId": case.id, "csrfToken": generate_csrf(),
            "headers": {"X-CSRFToken": generate_csrf()}, "chunkSize": current_app.config["SETTINGS"].upload_chunk_bytes,
            "statusUrlTemplate": url_for("slides.upload_status", upload_id="UPLOAD").replace("UPLOAD", "{uploadId}"),
            # asked with the file's SHA-256 before any byte is sent (duplicate warning)
            "duplicateCheckUrl": url_for("slides.case_slides", case_id=case.id),
            "i18n": upload_strings()}
    from .slides import slide_json
    from .slide_text import STAIN_CATEGORY_LABELS
    rows = [slide_json(s) for s in case.slides]
    return render_template("case_detail.html", case=case, can_upload=can_upload, upload_config=upload_config,
                           quality_of=slide_service.quality_of, qc_message=qc_message, rows=rows, qc_labels=ingest_text.qc_labels(),
                           stain_categories=STAIN_CATEGORY_LABELS,
                           retention_days=current_app.config["SETTINGS"].withdrawn_slide_retention_days)


# ---------------------------------------------------------------- JSON API, version 1
@bp.route("/api/v1/cases", methods=["GET"])
@authorize("case.list")
def list_cases():
    """Cases visible to the current user.
    ---
    get:
      summary: List cases
      parameters:
        - {name: q, in: query, schema: {type: string}, description: filter by case number or patient ID}
    """
    cases = case_service.visible_cases(me(), query=request.args.get("q"))
    return jsonify({"cases": [case_json(c, me()) for c in cases]})


@bp.route("/api/v1/cases", methods=["POST"])
@authorize("case.create")
def create_case():
    """Create a case at the technician's centre.
    ---
    post:
      summary: Create a case
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [case_number, patient_pseudo_id], properties: {case_number: {type: string}, patient_pseudo_id: {type: string}, patient_name: {type: string}, sex: {type: string, enum: [female, male, other, unknown]}, birth_date: {type: string, format: date}, age_years: {type: integer}, clinical_history: {type: string}, specimen_type: {type: string}, specimen_site: {type: string}, priority: {type: string, enum: [routine, urgent, frozen]}, requesting_clinician_id: {type: integer}}}
      responses:
        201: {description: created}
    """
    case = case_service.open_case(me(), json_body(), ip=client_ip())
    return jsonify(case_json(case, me())), 201


@bp.route("/api/v1/cases/<int:case_id>", methods=["GET"])
@authorize("case.view", load=lookup.loader("case", "case_id"), as_arg="case")
def get_case(case: Case):
    """One case.
    ---
    get:
      summary: Get a case
    """
    return jsonify(case_json(case, me()))


@bp.route("/api/v1/cases/<int:case_id>", methods=["PATCH"])
@authorize("case.edit", load=lookup.loader("case", "case_id"), as_arg="case")
def update_case(case: Case):
    """Update a case's clinical fields.
    ---
    patch:
      summary: Update a case
    """
    merged = {**case_json(case, me()), **json_body()}
    merged.setdefault("patient_name", case.patient_name)
    case_service.edit_case(me(), case, merged, ip=client_ip())
    return jsonify(case_json(case, me()))
