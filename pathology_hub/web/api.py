"""JSON API, version 1. Errors: ``{"error": {"code", "message"}}`` (see errors.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, current_app, jsonify, request

from ..domain import administration
from ..domain import cases as case_service
from ..domain.errors import ValidationFailed
from .authz import authorize, load_model, me
from .openapi import build_spec
from .security import client_ip
from .serializers import case_json, institution_json, user_json

if TYPE_CHECKING:
    from ..models import Case, User

bp = Blueprint("api", __name__, url_prefix="/api/v1")

_user = load_model(administration.find_user, "user_id")
_case = load_model(case_service.find_case, "case_id")


def json_body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return data



@bp.route("/openapi.json")
def openapi():
    return jsonify(build_spec(current_app))


@bp.route("/me")
def whoami():
    """The logged-in user.
    ---
    get:
      summary: The current user and their institution
      responses:
        200: {description: the user}
    """
    return jsonify(user_json(me()))


@bp.route("/institutions", methods=["GET"])
def list_institutions():
    """Institutions of the consortium.
    ---
    get:
      summary: List institutions with tier and referral targets
    """
    return jsonify({"institutions": [institution_json(i) for i in administration.institutions(by_code=True)]})


@bp.route("/institutions", methods=["POST"])
@authorize("admin.manage")
def create_institution():
    """Create an institution (admin).
    ---
    post:
      summary: Create an institution
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [code, name, tier], properties: {code: {type: string}, name: {type: string}, tier: {type: string, enum: [community, district, university]}, refers_to: {type: array, items: {type: string}}, time_zone: {type: string, description: "IANA zone, default Asia/Shanghai"}}}
      responses:
        201: {description: created}
    """
    data = json_body()
    inst = administration.create_institution(code=str(data.get("code", "")), name=str(data.get("name", "")),
                                             tier=str(data.get("tier", "")),
                                             refers_to=list(data.get("refers_to") or []),
                                             actor=me(), time_zone=str(data.get("time_zone") or ""))
    return jsonify(institution_json(inst)), 201


@bp.route("/users", methods=["GET"])
@authorize("admin.manage")
def list_users():
    """All users (admin).
    ---
    get:
      summary: List users
    """
    return jsonify({"users": [user_json(u) for u in administration.users(by_username=True)]})


@bp.route("/users", methods=["POST"])
@authorize("admin.manage")
def create_user():
    """Create a user (admin).
    ---
    post:
      summary: Create a user
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [username, full_name, password, role, institution], properties: {username: {type: string}, full_name: {type: string}, password: {type: string}, role: {type: string, enum: [technician, pathologist, clinician, admin]}, institution: {type: string}, email: {type: string}, subspecialties: {type: array, items: {type: string}, description: codes from /api/v1/subspecialties (a comma-separated string is accepted too)}}}
      responses:
        201: {description: created}
    """
    data = json_body()
    user = administration.create_user(institution_code=str(data.get("institution", "")),
                                      username=str(data.get("username", "")),
                                      full_name=str(data.get("full_name", "")),
                                      password=str(data.get("password", "")), role=str(data.get("role", "")),
                                      email=data.get("email"), subspecialties=data.get("subspecialties") or "",
                                      actor=me())
    return jsonify(user_json(user)), 201


@bp.route("/users/<int:user_id>/active", methods=["PUT"])
@authorize("admin.manage", load=_user, as_arg="user")
def set_user_active(user: User):
    """Activate or deactivate a user (admin); deactivation ends their sessions at once.
    ---
    put:
      summary: Set a user's active flag
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [active], properties: {active: {type: boolean}}}
    """
    data = json_body()
    if not isinstance(data.get("active"), bool):
        raise ValidationFailed("active must be true or false.", code="invalid_field")
    administration.set_user_active(user, data["active"], actor=me())
    return jsonify(user_json(user))


@bp.route("/users/<int:user_id>/subspecialties", methods=["PUT"])
@authorize("admin.manage", load=_user, as_arg="user")
def set_user_subspecialties(user: User):
    """Set a pathologist's subspecialties (admin); automatic assignment matches these codes.
    ---
    put:
      summary: Set a pathologist's subspecialties
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [subspecialties], properties: {subspecialties: {type: array, items: {type: string}, description: codes from /api/v1/subspecialties; 422 unknown_subspecialty otherwise}}}
    """
    data = json_body()
    if "subspecialties" not in data:
        raise ValidationFailed("subspecialties is required.", code="missing_field", details={"field": "subspecialties"})
    administration.set_subspecialties(user, data["subspecialties"], actor=me())
    return jsonify(user_json(user))


@bp.route("/cases", methods=["GET"])
@authorize("case.list")
def list_cases():
    """Cases visible to the current user.
    ---
    get:
      summary: List cases
      parameters:
        - {name: q, in: query, schema: {type: string}, description: filter by case number or patient ID}
    """
    cases = case_service.visible_cases(me(), query=request.args.get("q"))
    return jsonify({"cases": [case_json(c, me()) for c in cases]})


@bp.route("/cases", methods=["POST"])
@authorize("case.create")
def create_case():
    """Create a case at the technician's centre.
    ---
    post:
      summary: Create a case
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [case_number, patient_pseudo_id], properties: {case_number: {type: string}, patient_pseudo_id: {type: string}, patient_name: {type: string}, sex: {type: string, enum: [female, male, other, unknown]}, birth_date: {type: string, format: date}, age_years: {type: integer}, clinical_history: {type: string}, specimen_type: {type: string}, specimen_site: {type: string}, priority: {type: string, enum: [routine, urgent, frozen]}, requesting_clinician_id: {type: integer}}}
      responses:
        201: {description: created}
    """
    case = case_service.open_case(me(), json_body(), ip=client_ip())
    return jsonify(case_json(case, me())), 201


@bp.route("/cases/<int:case_id>", methods=["GET"])
@authorize("case.view", load=_case, as_arg="case")
def get_case(case: Case):
    """One case.
    ---
    get:
      summary: Get a case
    """
    return jsonify(case_json(case, me()))


@bp.route("/cases/<int:case_id>", methods=["PATCH"])
@authorize("case.edit", load=_case, as_arg="case")
def update_case(case: Case):
    """Update a case's clinical fields.
    ---
    patch:
      summary: Update a case
    """
    merged = {**case_json(case, me()), **json_body()}
    merged.setdefault("patient_name", case.patient_name)
    case_service.edit_case(me(), case, merged, ip=client_ip())
    return jsonify(case_json(case, me()))
