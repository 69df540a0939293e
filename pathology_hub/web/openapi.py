"""OpenAPI description generated from the live URL map and view docstrings.

Every ``/api/v1`` (and ``/dicomweb``) route documents itself with a YAML block after ``---`` in its
docstring, so the description cannot fall behind the code that serves it.
"""

from __future__ import annotations

import re

from apispec import APISpec
from apispec.yaml_utils import load_operations_from_docstring
from flask import Blueprint, Flask, current_app, jsonify

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>\w+)>")


def _openapi_path(rule: str) -> tuple[str, list[dict]]:
    params = []
    for m in _CONVERTER.finditer(rule):
        schema = {"type": "integer"} if m.group("conv") == "int" else {"type": "string"}
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": schema})
    return _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", rule), params


def build_spec(app: Flask) -> dict:
    spec = APISpec(title="Pathology Hub API", version="1.0.0", openapi_version="3.0.3",
                   info={"description": "Remote pathology consultation platform. Errors are "
                                        "`{\"error\": {\"code\": ..., \"message\": ...}}`."})
    spec.components.schema("Error", {"type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}, "required": ["code", "message"]}}})
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": "ph_session"})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(("/api/v1/", "/dicomweb/", "/iiif/")) or rule.endpoint == "openapi.openapi":
            continue
        view = app.view_functions[rule.endpoint]
        documented = load_operations_from_docstring(view.__doc__ or "")
        path, params = _openapi_path(rule.rule)
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op = dict(documented.get(method.lower()) or {"summary": (view.__doc__ or "").strip().split("\n")[0]})
            op.setdefault("responses", {"200": {"description": "OK"}})
            op["responses"].setdefault("default", {"description": "Error",
                                                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
            op.setdefault("security", [{"session": []}, {"bearer": []}])
            if params:
                op.setdefault("parameters", params)
            operations[method.lower()] = op
        if operations:
            spec.path(path=path, operations=operations)
    return spec.to_dict()


bp = Blueprint("openapi", __name__)


@bp.route("/api/v1/openapi.json")
def openapi():
    return jsonify(build_spec(current_app))
