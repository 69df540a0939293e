"""Home page (a role-specific worklist) and language switching."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session
from flask_login import current_user

from ..db import SessionLocal
from ..domain import cases as case_service
from ..domain import policy
from ..models import Role
from .auth import _safe_next
from .i18n import SUPPORTED

bp = Blueprint("main", __name__)


@bp.route("/")
def home():
    user = current_user._get_current_object()
    cases = case_service.list_cases(SessionLocal(), user, limit=50) if policy.can(user, "case.list") else []
    return render_template("home.html", cases=cases, Role=Role)


@bp.route("/lang", methods=["POST"])
def set_language():
    lang = request.form.get("lang", "")
    if lang in SUPPORTED:
        session["lang"] = lang
        if current_user.is_authenticated:
            db = SessionLocal()
            user = db.merge(current_user._get_current_object())
            user.locale = lang
            db.commit()
    return redirect(_safe_next(request.form.get("next") or request.referrer and _path_of(request.referrer)))


def _path_of(url: str) -> str:
    from urllib.parse import urlparse
    p = urlparse(url)
    return p.path + (f"?{p.query}" if p.query else "")
