"""The frozen-section lane over HTTP: the alarm banner (JSON for polling, acknowledgement),
the on-call roster admin page, and the template helpers for the minutes clock.

Each handler calls one function of :mod:`pathology_hub.domain.frozen`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import frozen
from ..domain.errors import DomainError
from .authz import authorize, me
from .errors import flash_error, wants_json

bp = Blueprint("frozen", __name__)


@bp.route("/api/v1/frozen/alarms")
@authorize("notification.list")
def api_alarms():
    """Frozen-section pages this user has not acknowledged yet (the alarm banner polls this).
    ---
    get:
      summary: Unacknowledged frozen-section pages of the signed-in user, newest first
    """
    return jsonify({"alarms": frozen.alarms_now(me())})


@bp.route("/frozen/pages/<int:page_id>/ack", methods=["POST"])
@bp.route("/api/v1/frozen/pages/<int:page_id>/ack", methods=["POST"])
@authorize("notification.list")
def acknowledge(page_id: int):
    """Acknowledge a frozen-section page: its alarm stops on all of this user's screens.
    ---
    post:
      summary: Acknowledge one of the signed-in user's frozen-section pages (404 for anyone else's)
    """
    page = frozen.acknowledge_now(me(), page_id)
    if wants_json():
        return jsonify(page)
    return redirect(request.form.get("next") or url_for("consultations.detail_page", consultation_id=page["consultation_id"]))


@bp.route("/admin/on-call", methods=["GET", "POST"])
@authorize("admin.manage")
def roster():
    """The on-call roster of the admin's institution: who is paged for frozen sections, when."""
    if request.method == "POST":
        try:
            frozen.add_shift_now(me(), request.form.to_dict())
            flash(_("On-call shift added."), "success")
            return redirect(url_for("frozen.roster"))
        except DomainError as exc:
            flash_error(exc)
    return render_template("admin_on_call.html", form=request.form, **frozen.roster_now(me()))


@bp.route("/admin/on-call/<int:shift_id>/delete", methods=["POST"])
@authorize("admin.manage")
def remove(shift_id: int):
    frozen.remove_shift_now(me(), shift_id)
    flash(_("On-call shift removed."), "success")
    return redirect(url_for("frozen.roster"))


def _alarms() -> list[dict[str, Any]]:
    user = me()
    return frozen.alarms_now(user) if user.is_authenticated else []


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(_alarms, "frozen_alarms")
    app.add_template_global(frozen.clock, "frozen_clock")
    app.add_template_global(frozen.case_clock_now, "frozen_case_clock")
    app.add_template_global(frozen.pages_now, "frozen_pages")
    app.add_template_global(frozen.target_minutes, "frozen_target_minutes")
    app.add_template_global(frozen.dashboard_now, "frozen_dashboard")
