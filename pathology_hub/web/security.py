"""Authentication plumbing, CSRF and security headers, applied to every request.

Login is required by default: only endpoints listed in ``PUBLIC_ENDPOINTS`` are
reachable anonymously, so a forgotten decorator cannot expose a page.
"""

from __future__ import annotations

import datetime as dt

from flask import Flask, current_app, g, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf

from ..domain import accounts, unit_of_work
from ..extensions import csrf, login_manager

PUBLIC_ENDPOINTS = {"auth.login", "static", "health.healthz", "health.readyz", "main.set_language",
                    "openapi.openapi", "reports.verify", "reports.verify_code",
                    "reports.api_verify"}
#: Endpoints that authorise every request themselves (tile token bound to the session,
#: else the full policy check); they skip the generic login check so that a tile with a
#: valid token costs no database query.
SELF_AUTHORISING_ENDPOINTS = {"slides.tile", "slides.dzi"}
#: Requests a page makes by itself (polling); they must not keep an idle session alive.
BACKGROUND_ENDPOINTS = {"consultations.api_notifications"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; worker-src 'self' blob:; font-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def session_policy() -> accounts.SessionPolicy:
    s = current_app.config["SETTINGS"]
    return accounts.SessionPolicy(idle=dt.timedelta(minutes=s.session_idle_minutes),
                                  absolute=dt.timedelta(hours=s.session_max_hours),
                                  max_failures=s.login_max_failures,
                                  lockout=dt.timedelta(minutes=s.login_lockout_minutes))


def client_ip() -> str | None:
    return request.remote_addr


def is_api_request() -> bool:
    return request.path.startswith(("/api/", "/dicomweb/", "/iiif/"))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = None  # our server-side sessions already bind and expire ids
    csrf.init_app(app)

    @login_manager.user_loader
    def load_user(token: str):
        return accounts.load_session_user(token, session_policy(),
                                          touch=request.endpoint not in BACKGROUND_ENDPOINTS)

    @login_manager.request_loader
    def load_user_from_bearer(req):
        header = req.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        user = accounts.load_token_user(header[7:].strip())
        if user is not None:
            g.auth_via_token = True
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        from .errors import error_response
        from .error_messages import render
        from flask import redirect, url_for
        if is_api_request():
            return error_response(401, "login_required", render("login_required"))
        return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))

    @app.before_request
    def require_login_and_csrf():
        endpoint = request.endpoint or ""
        # A CORS preflight never carries credentials and reveals nothing: web/cors.py answers it.
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        public = (endpoint in PUBLIC_ENDPOINTS or endpoint in SELF_AUTHORISING_ENDPOINTS
                  or endpoint.startswith("static") or request.endpoint is None or preflight)
        if not public and not current_user.is_authenticated:
            return login_manager.unauthorized()
        if request.method not in SAFE_METHODS and not getattr(g, "auth_via_token", False):
            csrf.protect()
        return None

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if request.endpoint not in ("static",) and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.teardown_appcontext
    def remove_session(_exc):
        unit_of_work.finish()

    app.jinja_env.globals["csrf_token"] = generate_csrf
