"""Admin page "LIS (HL7)": each institution's LIS endpoint and the HL7 outbox with resend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def error_headline(message: Any) -> str | None:
    """What went wrong with a message, in the admin's language. The stored ``last_error`` is the
    technical detail (socket errors, the LIS's own ACK text) and is shown beneath it as it is."""
    error = message.last_error or ""
    if not error:
        return None
    if message.status == "failed" and message.ack_code in ("AE", "AR"):
        return _("The LIS refused the message (%(code)s). Its answer:", code=message.ack_code)
    if error.startswith("ACK for another message"):
        return _("The LIS acknowledged a different message; check the LIS interface settings.")
    if error.startswith("no LIS endpoint"):
        return _("No LIS endpoint is set for this institution; the message waits until one is saved.")
    if error.startswith("no ACK within") or error.startswith("connection closed before"):
        return _("The LIS did not acknowledge the message; it will be sent again.")
    if "Error" in error.split(":", 1)[0]:
        return _("The LIS could not be reached; the message will be sent again.")
    return _("Sending stopped unexpectedly; the message will be sent again.")


@bp.route("")
@authorize("admin.manage")
def page():
    return render_template("admin_lis.html", institutions=administration.institutions(),
                           messages=outbox.recent_messages(), error_headline=error_headline)


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
