"""The Flask application factory: configuration, wiring (``bootstrap``), blueprints and CLI.

Kept out of ``pathology_hub/__init__.py`` so that importing any part of the package
(the sandboxed probe, the worker, the upload client) does not load Flask.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from flask import Flask

from . import bootstrap
from .cli import register_cli
from .config import Settings
from .logging_setup import configure_logging
from .web import register_web

PACKAGE_DIR = Path(__file__).resolve().parent


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask("pathology_hub", instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SETTINGS=settings,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_NAME="ph_session",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_max_hours),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in security.py so bearer-token API calls can skip it
        WTF_CSRF_TIME_LIMIT=None,      # the token lives as long as the session, which has its own time-outs
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=str(settings_dir() / "translations"),
        JSON_SORT_KEYS=False,
        MAX_FORM_MEMORY_SIZE=2 * 1024 * 1024,
    )
    app.config.update(overrides)

    bootstrap.wire(settings)
    # The web layer reaches the tus server through the app, not by importing the wiring.
    app.extensions["tus_server"] = bootstrap.tus_server

    register_web(app)
    register_cli(app)
    return app


def settings_dir() -> Path:
    """The package directory (templates, static files, translations)."""
    return PACKAGE_DIR
