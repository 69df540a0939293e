"""JSON placed inside an HTML page, escaped so that no value can end the element.

A ``<script type="application/json">`` block ends at the first ``</script`` whatever
the JSON says, so a stain or file name carrying ``</script><meta http-equiv=refresh>``
would otherwise become markup. Every ``<``, ``>``, ``&`` and ``'`` is written as a
``\\u00XX`` escape, which JSON.parse turns back into the same character. Unlike
Jinja's ``tojson`` the key order is kept (the viewer shows metadata in the order given).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup


def page_json(value: Any) -> Markup:
    """Serialise ``value`` for a page: safe inside a script element or a quoted attribute."""
    return htmlsafe_json_dumps(value, dumps=json.dumps, ensure_ascii=False, default=str)


def init_app(app: Flask) -> None:
    app.jinja_env.filters["page_json"] = page_json
