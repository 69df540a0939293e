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

    from .openapi import bp as openapi_bp
    from .admin import bp as admin_bp
    from .auth import bp as auth_bp
    from .cases import bp as cases_bp
    from .health import bp as health_bp
    from .main import bp as main_bp
    for bp in (auth_bp, main_bp, cases_bp, admin_bp, openapi_bp, health_bp):
        app.register_blueprint(bp)

    from . import slides, uploads
    uploads.init_app(app)
    slides.init_app(app)
    from . import slide_edits
    slide_edits.init_app(app)
    from . import consultations
    consultations.init_app(app)
    # ``from . import annotations`` would return this module's ``from __future__ import annotations``
    from .annotations import init_app as init_annotations
    init_annotations(app)
    from . import reports
    reports.init_app(app)
    from . import audit
    audit.init_app(app)
    from . import subspecialties
    subspecialties.init_app(app)
    from . import frozen
    frozen.init_app(app)
    from . import live
    live.init_app(app)
    from .lis_admin import bp as lis_admin_bp
    app.register_blueprint(lis_admin_bp)
    from . import dicomweb
    dicomweb.init_app(app)
    from . import iiif
    iiif.init_app(app)
    from . import refusal_audit_hook
    refusal_audit_hook.install(app)
