"""The JSON body of an API request, or a refusal with a stable code (``invalid_json``)."""

from __future__ import annotations

from flask import request

from ..domain.errors import ValidationFailed


def json_body() -> dict:
    """The request's JSON object; anything else (no body, a list, bad JSON) is a 422 ``invalid_json``."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return data
