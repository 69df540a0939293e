"""Home page (a role-specific worklist) and language switching."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session
from flask_login import current_user

from ..domain import accounts
from ..domain import cases as case_service
from .auth import _safe_next
from .authz import me
from .i18n import SUPPORTED

bp = Blueprint("main", __name__)


@bp.route("/")
def home():
    return render_template("home.html", cases=case_service.home_cases(me(), limit=50))


@bp.route("/lang", methods=["POST"])
def set_language():
    lang = request.form.get("lang", "")
    if lang in SUPPORTED:
        session["lang"] = lang
        if current_user.is_authenticated:
            accounts.remember_locale(me(), lang)
    return redirect(_safe_next(request.form.get("next") or request.referrer and _path_of(request.referrer)))


def _path_of(url: str) -> str:
    from urllib.parse import urlparse
    p = urlparse(url)
    return p.path + (f"?{p.query}" if p.query else "")
