"""The subspecialty vocabulary over HTTP: the list for forms and clients, labels in the
user's language for pages, and the translated message of ``unknown_subspecialty``."""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask_babel import get_locale

from ..domain import subspecialties as vocabulary
from .authz import authorize

bp = Blueprint("subspecialties", __name__)


def _locale() -> str:
    return str(get_locale() or "en")


def label(code: str | None) -> str:
    """The label of one code in the user's language (a value outside the list as stored)."""
    return vocabulary.label(code, _locale())


def labels(stored: str | None) -> list[str]:
    """Labels of a profile's stored codes."""
    return [label(c) for c in vocabulary.split_stored(stored)]


def choices() -> list[dict[str, str]]:
    """``[{"code", "label"}]`` of the configured list, for ``<select>`` options."""
    locale = _locale()
    return [{"code": s.code, "label": s.label(locale)} for s in vocabulary.all_subspecialties()]


@bp.route("/api/v1/subspecialties")
@authorize("worklist.view")
def api_list():
    """The configured subspecialties (``SUBSPECIALTIES_FILE``): requests and profiles carry their codes.
    ---
    get:
      summary: List the subspecialty vocabulary (code, zh-CN and English labels)
    """
    locale = _locale()
    return jsonify({"subspecialties": [s.as_json(locale) for s in vocabulary.all_subspecialties()]})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(label, "subspecialty_label")
    app.add_template_global(labels, "subspecialty_labels")
    app.add_template_global(choices, "subspecialty_choices")
    app.add_template_global(vocabulary.split_stored, "subspecialty_codes")
