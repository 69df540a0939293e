"""Locale choice: the user's saved preference, then the session, then the browser."""

from __future__ import annotations

from flask import Flask, request, session
from flask_login import current_user

from ..extensions import babel

SUPPORTED = {"en": "English", "zh_CN": "中文"}


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale in SUPPORTED:
        return current_user.locale
    if session.get("lang") in SUPPORTED:
        return session["lang"]
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    return "zh_CN" if best and best.startswith("zh") else "en"


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals["SUPPORTED_LOCALES"] = SUPPORTED
    app.jinja_env.globals["current_locale"] = select_locale
