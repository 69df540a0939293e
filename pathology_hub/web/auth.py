"""Login, logout, password change, and who is signed in (``/api/v1/me``)."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from ..domain import accounts
from ..domain.errors import DomainError
from .authz import me
from .errors import flash_error
from .security import client_ip, session_policy
from .serializers import user_json
from .errors import message_of

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so the login page cannot redirect off-site."""
    if not target:
        return url_for("main.home")
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("main.home")
    return target


def login_messages() -> dict[str, str]:
    return {"invalid_credentials": _("Wrong username or password."),
            "account_locked": _("Too many failed logins. Try again later."),
            "account_inactive": _("This account is deactivated.")}


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("main.home"))
    error = None
    if request.method == "POST":
        try:
            user = accounts.log_in(request.form.get("username", ""), request.form.get("password", ""),
                                   session_policy(), ip=client_ip(), user_agent=request.headers.get("User-Agent"))
        except DomainError as exc:
            error = login_messages().get(exc.code, message_of(exc))
            return render_template("login.html", error=error), 401
        lang = session.get("lang")
        session.clear()  # a fresh session at login: nothing carried over from before authentication
        if lang:
            session["lang"] = lang
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error)


@bp.route("/logout", methods=["POST"])
def logout():
    token = current_user.get_id()
    if token:
        accounts.log_out(token, ip=client_ip())
        liveness = current_app.extensions.get("session_liveness")
        if liveness is not None:  # tiles of this session stop now here, within a second elsewhere
            liveness.forget(token)
    logout_user()
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You have been logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    if request.method == "POST":
        if request.form.get("new_password") != request.form.get("confirm_password"):
            flash(_("The new passwords do not match."), "error")
            return render_template("password.html"), 422
        try:
            accounts.change_own_password(me(), request.form.get("old_password", ""),
                                         request.form.get("new_password", ""), ip=client_ip())
        except DomainError as exc:
            flash_error(exc)
            return render_template("password.html"), exc.status
        flash(_("Your password has been changed."), "success")
        return redirect(url_for("main.home"))
    return render_template("password.html")


@bp.route("/api/v1/me")
def whoami():
    """The logged-in user.
    ---
    get:
      summary: The current user and their institution
      responses:
        200: {description: the user}
    """
    return jsonify(user_json(me()))
