"""Case pages for technicians, pathologists and clinicians."""

from __future__ import annotations


from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import generate_csrf
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ..db import SessionLocal
from ..domain import cases as case_service
from ..domain import policy
from ..domain import slides as slide_service
from ..domain.errors import DomainError
from ..models import Case, Priority, Role, Sex, User
from .authz import authorize, load_model
from . import ingest_text
from .bundle_strings import upload_strings
from .errors import flash_error
from .security import client_ip

bp = Blueprint("cases", __name__, url_prefix="/cases")


def _clinicians() -> list[User]:
    return list(SessionLocal().scalars(select(User).where(
        User.institution_id == current_user.institution_id, User.role == Role.CLINICIAN, User.active.is_(True))))


@bp.route("/new", methods=["GET", "POST"])
@authorize("case.create")
def new_case():
    form = request.form.to_dict() if request.method == "POST" else {}
    if request.method == "POST":
        db = SessionLocal()
        try:
            case = case_service.create_case(db, current_user._get_current_object(), form, ip=client_ip())
        except DomainError as exc:
            db.rollback()
            flash_error(exc)
            return render_template("case_form.html", form=form, Priority=Priority, Sex=Sex,
                                   clinicians=_clinicians()), exc.status
        db.commit()
        flash(_("Case %(number)s created.", number=case.case_number), "success")
        return redirect(url_for("cases.detail", case_id=case.id))
    return render_template("case_form.html", form=form, Priority=Priority, Sex=Sex, clinicians=_clinicians())


def qc_message(warning: dict) -> str:
    messages = {"missing_mpp": _("No microns-per-pixel recorded: measurements and the scale bar will be unavailable."),
                "low_tissue": _("Very little tissue detected on the slide."),
                "blurry": _("The scan looks out of focus.")}
    return messages.get(warning.get("code")) or ingest_text.qc_text(warning) or warning.get("message", "")


@bp.route("/<int:case_id>")
@authorize("case.view", load=load_model(Case, "case_id"), as_arg="case")
def detail(case: Case):
    user = current_user._get_current_object()
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
    from .slides_web import slide_json
    from .slide_text import STAIN_CATEGORY_LABELS
    rows = [slide_json(s) for s in case.slides]
    return render_template("case_detail.html", case=case, can_upload=can_upload, upload_config=upload_config,
                           quality_of=slide_service.quality_of, qc_message=qc_message, rows=rows, qc_labels=ingest_text.qc_labels(),
                           stain_categories=STAIN_CATEGORY_LABELS,
                           retention_days=current_app.config["SETTINGS"].withdrawn_slide_retention_days)
