"""Times as the viewing user reads them: in their institution's zone, with the offset written.

Whose zone: the *viewing* user's institution (``Institution.time_zone``), so two people
reading the same page see the same instant, each in their own zone and each labelled.
Anonymous pages (login, public verification) use the default zone.  Templates use one
filter, ``|localtime`` (``{{ e.at|localtime }}`` → ``2026-12-04 20:00 (UTC+08:00)``).
"""

from __future__ import annotations

import datetime as dt

from flask import Flask
from flask_login import current_user

from ..domain import timezones


def viewer_zone() -> str:
    """The zone name of the signed-in user's institution, or the default zone."""
    try:
        if current_user and current_user.is_authenticated:
            return current_user.institution.time_zone or timezones.DEFAULT_ZONE
    except Exception:  # outside a request, or a detached user: fall back rather than fail a page
        pass
    return timezones.DEFAULT_ZONE


def localtime(value: dt.datetime | None, seconds: bool = False) -> str:
    """The Jinja filter: a stored time in the viewer's zone with its UTC offset; "" for no time."""
    return timezones.format_local(value, viewer_zone(), seconds=seconds)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.add_template_global(localtime, "local_dt")
    app.add_template_global(viewer_zone, "viewer_zone")
