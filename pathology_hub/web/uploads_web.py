"""The tus endpoint at /api/v1/uploads/ (protocol in pathology_hub.uploads, hooks in
pathology_hub/upload_server.py, reached through ``app.extensions["tus_server"]``). Browser uploads carry the session cookie and the CSRF
header; scanner workstations send ``Authorization: Bearer`` tokens."""

from __future__ import annotations

from flask import Flask
from flask_babel import gettext as _
from flask_login import current_user

from .tus_adapter import make_tus_blueprint


def _authenticate():
    return current_user._get_current_object() if current_user.is_authenticated else None


def _gib(value: object) -> str:
    return f"{int(value) / 2**30:.1f}"  # type: ignore[arg-type]


def localize_upload_error(code: str, message: str, details: dict) -> str:
    """The user's language for the upload errors a person can act on (the core words them in
    English); other codes keep the core's message. Keyed by the stable error code."""
    try:
        if code in ("storage_unavailable", "database_unavailable"):
            return _("Every byte of the file arrived and is kept safely, but storage is unavailable right now. "
                     "The upload finishes by itself when it is back; nothing needs to be sent again "
                     "(next check in %(seconds)s s).", seconds=details.get("retry_after", 10))
        if code == "processing_failed":
            return _("The file arrived intact and is kept, but it could not be stored yet; "
                     "the server retries by itself.")
        if code == "upload_storing":
            return _("Every byte of this upload arrived; it is being stored right now. "
                     "Check again in a few seconds.")
        if code == "too_many_open_uploads":
            return _("You already have %(open)s unfinished uploads (at most %(limit)s). Finish or remove some "
                     "of them, or wait until they expire, before starting another.",
                     open=details["open"], limit=details["limit"])
        if code == "quota_exceeded":
            return _("Your centre's storage quota (%(quota)s GiB) would be exceeded: %(used)s GiB used, "
                     "this file is %(size)s GiB.", quota=_gib(details["quota_bytes"]),
                     used=_gib(details["used_bytes"]), size=_gib(details["size"]))
    except (KeyError, TypeError, ValueError):
        pass
    return message


def init_app(app: Flask) -> None:
    app.register_blueprint(make_tus_blueprint(app.extensions["tus_server"], authenticate=_authenticate, localize=localize_upload_error))
