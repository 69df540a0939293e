"""Administration pages: institutions of the consortium and their users."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ..db import SessionLocal
from ..domain import accounts, timezones
from ..domain.errors import DomainError
from ..models import Institution, Role, Tier, User
from .authz import authorize, load_model, me
from .errors import flash_error

bp = Blueprint("admin", __name__, url_prefix="/admin")



@bp.route("/institutions", methods=["GET", "POST"])
@authorize("admin.manage")
def institutions():
    db = SessionLocal()
    if request.method == "POST":
        try:
            accounts.create_institution(db, code=request.form.get("code", "").strip(),
                                        name=request.form.get("name", ""), tier=request.form.get("tier", ""),
                                        refers_to=request.form.getlist("refers_to"), actor=me(),
                                        time_zone=request.form.get("time_zone", ""),
                                        report_language=request.form.get("report_language") or None)
            db.commit()
            flash(_("Institution created."), "success")
            return redirect(url_for("admin.institutions"))
        except DomainError as exc:
            db.rollback()
            flash_error(exc)
    items = list(db.scalars(select(Institution).order_by(Institution.tier, Institution.code)))
    return render_template("admin_institutions.html", institutions=items, Tier=Tier,
                           default_zone=timezones.DEFAULT_ZONE,
                           report_languages=accounts.REPORT_LANGUAGES)


@bp.route("/institutions/<int:institution_id>/time_zone", methods=["POST"])
@authorize("admin.manage", load=load_model(Institution, "institution_id"), as_arg="institution")
def institution_time_zone(institution: Institution):
    """Change the zone in which the institution's users read times (stored times stay UTC)."""
    db = SessionLocal()
    try:
        accounts.set_institution_time_zone(db, institution, request.form.get("time_zone", ""), actor=me())
        db.commit()
        flash(_("Time zone saved."), "success")
    except DomainError as exc:
        db.rollback()
        flash_error(exc)
    return redirect(url_for("admin.institutions"))


@bp.route("/institutions/<int:institution_id>/active", methods=["POST"])
@authorize("admin.manage", load=load_model(Institution, "institution_id"), as_arg="institution")
def institution_active(institution: Institution):
    db = SessionLocal()
    accounts.set_institution_active(db, institution, request.form.get("active") == "1", actor=me())
    db.commit()
    return redirect(url_for("admin.institutions"))


@bp.route("/institutions/<int:institution_id>/report-language", methods=["POST"])
@authorize("admin.manage", load=load_model(Institution, "institution_id"), as_arg="institution")
def institution_report_language(institution: Institution):
    db = SessionLocal()
    try:
        accounts.set_report_language(db, institution, request.form.get("report_language"), actor=me())
        db.commit()
        flash(_("Report language saved."), "success")
    except DomainError as exc:
        db.rollback()
        flash_error(exc)
    return redirect(url_for("admin.institutions"))


@bp.route("/users", methods=["GET", "POST"])
@authorize("admin.manage")
def users():
    db = SessionLocal()
    if request.method == "POST":
        inst = db.get(Institution, int(request.form.get("institution_id") or 0))
        try:
            if inst is None:
                raise DomainError("Choose an institution.", code="institution_required")
            accounts.create_user(db, username=request.form.get("username", "").strip(),
                                 full_name=request.form.get("full_name", ""), password=request.form.get("password", ""),
                                 role=request.form.get("role", ""), institution=inst,
                                 email=request.form.get("email") or None,
                                 subspecialties=request.form.getlist("subspecialties"), actor=me())
            db.commit()
            flash(_("User created."), "success")
            return redirect(url_for("admin.users"))
        except DomainError as exc:
            db.rollback()
            flash_error(exc)
    items = list(db.scalars(select(User).order_by(User.institution_id, User.username)))
    insts = list(db.scalars(select(Institution).order_by(Institution.code)))
    return render_template("admin_users.html", users=items, institutions=insts, Role=Role)


@bp.route("/users/<int:user_id>/subspecialties", methods=["POST"])
@authorize("admin.manage", load=load_model(User, "user_id"), as_arg="user")
def user_subspecialties(user: User):
    """A pathologist's subspecialties, chosen from the configured list (used by automatic assignment)."""
    db = SessionLocal()
    try:
        accounts.set_subspecialties(db, user, request.form.getlist("subspecialties"), actor=me())
        db.commit()
        flash(_("Subspecialties of %(name)s saved.", name=user.full_name), "success")
    except DomainError as exc:
        db.rollback()
        flash_error(exc)
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@authorize("admin.manage", load=load_model(User, "user_id"), as_arg="user")
def user_active(user: User):
    db = SessionLocal()
    if user.id == current_user.id:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.users"))
    accounts.set_user_active(db, user, request.form.get("active") == "1", actor=me())
    db.commit()
    return redirect(url_for("admin.users"))
