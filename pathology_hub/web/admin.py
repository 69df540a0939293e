"""Administration pages: institutions of the consortium and their users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import accounts, administration, timezones
from ..domain.errors import DomainError
from .authz import authorize, load_model, me
from .errors import flash_error

if TYPE_CHECKING:
    from ..models import Institution, User

bp = Blueprint("admin", __name__, url_prefix="/admin")

_institution = load_model(administration.find_institution, "institution_id")
_user = load_model(administration.find_user, "user_id")


@bp.route("/institutions", methods=["GET", "POST"])
@authorize("admin.manage")
def institutions():
    if request.method == "POST":
        try:
            administration.create_institution(code=request.form.get("code", "").strip(),
                                              name=request.form.get("name", ""), tier=request.form.get("tier", ""),
                                              refers_to=request.form.getlist("refers_to"), actor=me(),
                                              time_zone=request.form.get("time_zone", ""),
                                              report_language=request.form.get("report_language") or None)
            flash(_("Institution created."), "success")
            return redirect(url_for("admin.institutions"))
        except DomainError as exc:
            flash_error(exc)
    return render_template("admin_institutions.html", institutions=administration.institutions(),
                           Tier=administration.TIERS, default_zone=timezones.DEFAULT_ZONE,
                           report_languages=accounts.REPORT_LANGUAGES)


def _institution_setting(change: Callable[..., None], institution: Institution, value: str | None,
                         saved: str):
    """Save one setting of an institution (time zone, report language) and go back to the list,
    with the refusal flashed when the value is not acceptable."""
    try:
        change(institution, value, actor=me())
        flash(saved, "success")
    except DomainError as exc:
        flash_error(exc)
    return redirect(url_for("admin.institutions"))


@bp.route("/institutions/<int:institution_id>/time_zone", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_time_zone(institution: Institution):
    """Change the zone in which the institution's users read times (stored times stay UTC)."""
    return _institution_setting(administration.set_institution_time_zone, institution,
                                request.form.get("time_zone", ""), _("Time zone saved."))


@bp.route("/institutions/<int:institution_id>/active", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_active(institution: Institution):
    administration.set_institution_active(institution, request.form.get("active") == "1", actor=me())
    return redirect(url_for("admin.institutions"))


@bp.route("/institutions/<int:institution_id>/report-language", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_report_language(institution: Institution):
    return _institution_setting(administration.set_report_language, institution,
                                request.form.get("report_language"), _("Report language saved."))


@bp.route("/users", methods=["GET", "POST"])
@authorize("admin.manage")
def users():
    if request.method == "POST":
        try:
            administration.create_user(institution_id=int(request.form.get("institution_id") or 0),
                                       username=request.form.get("username", "").strip(),
                                       full_name=request.form.get("full_name", ""),
                                       password=request.form.get("password", ""),
                                       role=request.form.get("role", ""), email=request.form.get("email") or None,
                                       subspecialties=request.form.getlist("subspecialties"), actor=me())
            flash(_("User created."), "success")
            return redirect(url_for("admin.users"))
        except DomainError as exc:
            flash_error(exc)
    return render_template("admin_users.html", users=administration.users(),
                           institutions=administration.institutions(by_code=True), Role=administration.ROLES)


@bp.route("/users/<int:user_id>/subspecialties", methods=["POST"])
@authorize("admin.manage", load=_user, as_arg="user")
def user_subspecialties(user: User):
    """A pathologist's subspecialties, chosen from the configured list (used by automatic assignment)."""
    try:
        administration.set_subspecialties(user, request.form.getlist("subspecialties"), actor=me())
        flash(_("Subspecialties of %(name)s saved.", name=user.full_name), "success")
    except DomainError as exc:
        flash_error(exc)
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@authorize("admin.manage", load=_user, as_arg="user")
def user_active(user: User):
    if user.id == me().id:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.users"))
    administration.set_user_active(user, request.form.get("active") == "1", actor=me())
    return redirect(url_for("admin.users"))
