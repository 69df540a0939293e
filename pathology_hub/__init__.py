"""Pathology Hub: remote pathology consultation for a tiered medical consortium.

The application factory wires the web layer (blueprints) to the domain
services and persistence; nothing here holds business rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask

from .config import Settings
from .logging_setup import configure_logging


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    app = Flask(__name__, instance_path=str(settings.instance_path))
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

    from . import db
    from .domain import passwords
    db.init_engine(settings.database_url)
    passwords.configure(settings.argon2_time_cost, settings.argon2_memory_kib)

    from . import runtime
    runtime.init(settings)

    from .web import register_web
    register_web(app)

    from .cli import register_cli
    register_cli(app)
    return app


def settings_dir():
    from pathlib import Path
    return Path(__file__).resolve().parent
