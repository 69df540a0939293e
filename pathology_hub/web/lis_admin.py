"""Admin page "LIS (HL7)": each institution's LIS endpoint and the HL7 outbox with resend."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from ..db import SessionLocal
from ..domain.errors import DomainError
from ..domain.hl7 import outbox
from ..models import Institution
from .authz import authorize, load_model, me
from .errors import flash_error

bp = Blueprint("lis_admin", __name__, url_prefix="/admin/lis")


@bp.route("")
@authorize("admin.manage")
def page():
    db = SessionLocal()
    institutions = list(db.scalars(select(Institution).order_by(Institution.tier, Institution.code)))
    return render_template("admin_lis.html", institutions=institutions, messages=outbox.recent(db))


@bp.route("/institutions/<int:institution_id>/endpoint", methods=["POST"])
@authorize("admin.manage", load=load_model(Institution, "institution_id"), as_arg="institution")
def endpoint(institution: Institution):
    db = SessionLocal()
    try:
        outbox.set_endpoint(db, institution, request.form.get("lis_host"), request.form.get("lis_port"), actor=me())
        db.commit()
        flash(_("LIS endpoint saved."), "success")
    except DomainError as exc:
        db.rollback()
        flash_error(exc)
    return redirect(url_for("lis_admin.page"))


@bp.route("/messages/<int:message_id>/resend", methods=["POST"])
@authorize("admin.manage")
def resend(message_id: int):
    db = SessionLocal()
    try:
        outbox.resend(db, message_id, actor=me(), ip=request.remote_addr)
        db.commit()
        flash(_("The message was queued to be sent again."), "success")
    except DomainError as exc:
        db.rollback()
        flash_error(exc)
    return redirect(url_for("lis_admin.page"))
