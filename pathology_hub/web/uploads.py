"""The tus endpoint at /api/v1/uploads/ (protocol in pathology_hub.uploads, hooks in
pathology_hub/upload_server.py, reached through ``app.extensions["tus_server"]``). Browser uploads carry the session cookie and the CSRF
header; scanner workstations send ``Authorization: Bearer`` tokens."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user

from .error_messages import localize_upload_error
from .tus_adapter import make_tus_blueprint


def _authenticate():
    return current_user._get_current_object() if current_user.is_authenticated else None


def init_app(app: Flask) -> None:
    app.register_blueprint(make_tus_blueprint(app.extensions["tus_server"], authenticate=_authenticate, localize=localize_upload_error))
