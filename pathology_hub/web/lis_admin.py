"""Admin page "LIS (HL7)": each institution's LIS endpoint and the HL7 outbox with resend."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import administration
from ..domain.errors import DomainError
from ..domain.hl7 import outbox
from .authz import authorize, load_model, me
from .errors import flash_error

if TYPE_CHECKING:
    from ..models import Institution

bp = Blueprint("lis_admin", __name__, url_prefix="/admin/lis")


@bp.route("")
@authorize("admin.manage")
def page():
    return render_template("admin_lis.html", institutions=administration.institutions(),
                           messages=outbox.recent_messages())


@bp.route("/institutions/<int:institution_id>/endpoint", methods=["POST"])
@authorize("admin.manage", load=load_model(administration.find_institution, "institution_id"), as_arg="institution")
def endpoint(institution: Institution):
    try:
        outbox.save_endpoint(institution, request.form.get("lis_host"), request.form.get("lis_port"), actor=me())
        flash(_("LIS endpoint saved."), "success")
    except DomainError as exc:
        flash_error(exc)
    return redirect(url_for("lis_admin.page"))


@bp.route("/messages/<int:message_id>/resend", methods=["POST"])
@authorize("admin.manage")
def resend(message_id: int):
    try:
        outbox.resend_message(message_id, actor=me(), ip=request.remote_addr)
        flash(_("The message was queued to be sent again."), "success")
    except DomainError as exc:
        flash_error(exc)
    return redirect(url_for("lis_admin.page"))
