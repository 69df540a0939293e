"""Case pages for technicians, pathologists and clinicians."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from ..db import SessionLocal
from ..domain import cases as case_service
from ..domain.errors import DomainError
from ..models import Case, Priority, Role, Sex, User
from .authz import authorize, load_model
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
            flash(exc.message, "error")
            return render_template("case_form.html", form=form, Priority=Priority, Sex=Sex,
                                   clinicians=_clinicians()), exc.status
        db.commit()
        flash(_("Case %(number)s created.", number=case.case_number), "success")
        return redirect(url_for("cases.detail", case_id=case.id))
    return render_template("case_form.html", form=form, Priority=Priority, Sex=Sex, clinicians=_clinicians())


@bp.route("/<int:case_id>")
@authorize("case.view", load=load_model(Case, "case_id"), as_arg="case")
def detail(case: Case):
    return render_template("case_detail.html", case=case)
