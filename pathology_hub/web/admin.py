"""Administration: institutions of the consortium and their users, as pages and as JSON (``/api/v1``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _

from ..domain import accounts, administration, timezones
from ..domain.errors import DomainError, ValidationFailed
from .authz import authorize, load_model, me
from .errors import flash_error
from .request_json import json_body
from .serializers import institution_json, user_json

if TYPE_CHECKING:
    from ..models import Institution, User

bp = Blueprint("admin", __name__)

_institution = load_model(administration.find_institution, "institution_id")
_user = load_model(administration.find_user, "user_id")


@bp.route("/admin/institutions", methods=["GET", "POST"])
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


@bp.route("/admin/institutions/<int:institution_id>/time_zone", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_time_zone(institution: Institution):
    """Change the zone in which the institution's users read times (stored times stay UTC)."""
    return _institution_setting(administration.set_institution_time_zone, institution,
                                request.form.get("time_zone", ""), _("Time zone saved."))


@bp.route("/admin/institutions/<int:institution_id>/active", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_active(institution: Institution):
    administration.set_institution_active(institution, request.form.get("active") == "1", actor=me())
    return redirect(url_for("admin.institutions"))


@bp.route("/admin/institutions/<int:institution_id>/report-language", methods=["POST"])
@authorize("admin.manage", load=_institution, as_arg="institution")
def institution_report_language(institution: Institution):
    return _institution_setting(administration.set_report_language, institution,
                                request.form.get("report_language"), _("Report language saved."))


@bp.route("/admin/users", methods=["GET", "POST"])
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


@bp.route("/admin/users/<int:user_id>/subspecialties", methods=["POST"])
@authorize("admin.manage", load=_user, as_arg="user")
def user_subspecialties(user: User):
    """A pathologist's subspecialties, chosen from the configured list (used by automatic assignment)."""
    try:
        administration.set_subspecialties(user, request.form.getlist("subspecialties"), actor=me())
        flash(_("Subspecialties of %(name)s saved.", name=user.full_name), "success")
    except DomainError as exc:
        flash_error(exc)
    return redirect(url_for("admin.users"))


@bp.route("/admin/users/<int:user_id>/active", methods=["POST"])
@authorize("admin.manage", load=_user, as_arg="user")
def user_active(user: User):
    if user.id == me().id:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.users"))
    administration.set_user_active(user, request.form.get("active") == "1", actor=me())
    return redirect(url_for("admin.users"))


# ---------------------------------------------------------------- JSON API, version 1
@bp.route("/api/v1/institutions", methods=["GET"])
def list_institutions():
    """Institutions of the consortium.
    ---
    get:
      summary: List institutions with tier and referral targets
    """
    return jsonify({"institutions": [institution_json(i) for i in administration.institutions(by_code=True)]})


@bp.route("/api/v1/institutions", methods=["POST"])
@authorize("admin.manage")
def create_institution():
    """Create an institution (admin).
    ---
    post:
      summary: Create an institution
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [code, name, tier], properties: {code: {type: string}, name: {type: string}, tier: {type: string, enum: [community, district, university]}, refers_to: {type: array, items: {type: string}}, time_zone: {type: string, description: "IANA zone, default Asia/Shanghai"}}}
      responses:
        201: {description: created}
    """
    data = json_body()
    inst = administration.create_institution(code=str(data.get("code", "")), name=str(data.get("name", "")),
                                             tier=str(data.get("tier", "")),
                                             refers_to=list(data.get("refers_to") or []),
                                             actor=me(), time_zone=str(data.get("time_zone") or ""))
    return jsonify(institution_json(inst)), 201


@bp.route("/api/v1/users", methods=["GET"])
@authorize("admin.manage")
def list_users():
    """All users (admin).
    ---
    get:
      summary: List users
    """
    return jsonify({"users": [user_json(u) for u in administration.users(by_username=True)]})


@bp.route("/api/v1/users", methods=["POST"])
@authorize("admin.manage")
def create_user():
    """Create a user (admin).
    ---
    post:
      summary: Create a user
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [username, full_name, password, role, institution], properties: {username: {type: string}, full_name: {type: string}, password: {type: string}, role: {type: string, enum: [technician, pathologist, clinician, admin]}, institution: {type: string}, email: {type: string}, subspecialties: {type: array, items: {type: string}, description: codes from /api/v1/subspecialties (a comma-separated string is accepted too)}}}
      responses:
        201: {description: created}
    """
    data = json_body()
    user = administration.create_user(institution_code=str(data.get("institution", "")),
                                      username=str(data.get("username", "")),
                                      full_name=str(data.get("full_name", "")),
                                      password=str(data.get("password", "")), role=str(data.get("role", "")),
                                      email=data.get("email"), subspecialties=data.get("subspecialties") or "",
                                      actor=me())
    return jsonify(user_json(user)), 201


@bp.route("/api/v1/users/<int:user_id>/active", methods=["PUT"])
@authorize("admin.manage", load=_user, as_arg="user")
def set_user_active(user: User):
    """Activate or deactivate a user (admin); deactivation ends their sessions at once.
    ---
    put:
      summary: Set a user's active flag
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [active], properties: {active: {type: boolean}}}
    """
    data = json_body()
    if not isinstance(data.get("active"), bool):
        raise ValidationFailed("active must be true or false.", code="invalid_field")
    administration.set_user_active(user, data["active"], actor=me())
    return jsonify(user_json(user))


@bp.route("/api/v1/users/<int:user_id>/subspecialties", methods=["PUT"])
@authorize("admin.manage", load=_user, as_arg="user")
def set_user_subspecialties(user: User):
    """Set a pathologist's subspecialties (admin); automatic assignment matches these codes.
    ---
    put:
      summary: Set a pathologist's subspecialties
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [subspecialties], properties: {subspecialties: {type: array, items: {type: string}, description: codes from /api/v1/subspecialties; 422 unknown_subspecialty otherwise}}}
    """
    data = json_body()
    if "subspecialties" not in data:
        raise ValidationFailed("subspecialties is required.", code="missing_field", details={"field": "subspecialties"})
    administration.set_subspecialties(user, data["subspecialties"], actor=me())
    return jsonify(user_json(user))
