"""Web layer: blueprints, templates and the JSON API. Handlers stay thin."""

from __future__ import annotations

from flask import Flask


def register_web(app: Flask) -> None:
    from . import body_limits, errors, i18n, page_json, security
    page_json.init_app(app)
    body_limits.init_app(app)  # first: bodies are bounded before the CSRF check reads a form
    security.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    from . import times
    times.init_app(app)

    from .api import bp as api_bp
    from .admin import bp as admin_bp
    from .auth import bp as auth_bp
    from .cases import bp as cases_bp
    from .health import bp as health_bp
    from .main import bp as main_bp
    for bp in (auth_bp, main_bp, cases_bp, admin_bp, api_bp, health_bp):
        app.register_blueprint(bp)

    from . import slides_web, uploads_web
    uploads_web.init_app(app)
    slides_web.init_app(app)
    from . import slide_edits_web
    slide_edits_web.init_app(app)
    from . import annotations_web, consultations_web
    consultations_web.init_app(app)
    annotations_web.init_app(app)
    from . import reports_web
    reports_web.init_app(app)
    from . import audit_web
    audit_web.init_app(app)
    from . import subspecialties_web
    subspecialties_web.init_app(app)
    from . import frozen_web
    frozen_web.init_app(app)
    from .lis_admin import bp as lis_admin_bp
    app.register_blueprint(lis_admin_bp)
    from . import refusal_audit_hook
    refusal_audit_hook.install(app)
