"""Changing a slide before submission: stain and block/part label, and withdrawal.

JSON API for clients and two form routes for the case page (its dialogs post here and come
back with a flashed message).  The rules live in :mod:`pathology_hub.domain.slide_facts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, current_app, flash, jsonify, redirect, request, url_for
from flask_babel import gettext as _

from ..domain import cases as case_service
from ..domain import policy, slide_facts
from ..domain import slides as slide_service
from ..domain.errors import DomainError, ValidationFailed
from .request_json import json_body
from .authz import authorize, load_model, me
from .security import client_ip
from .errors import flash_error
from .serializers import iso
from .slide_text import stain_display
from .tile_fastpath import forget_reader

if TYPE_CHECKING:
    from ..models import Case, Slide

bp = Blueprint("slide_edits", __name__)
_slide = load_model(slide_service.find_slide, "slide_id")
_case = load_model(case_service.find_case, "case_id")


def _confirmed(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes", "on")


def withdraw_now(slide: Slide, reason: Any) -> None:
    """Withdraw and commit (shared by DELETE, the withdraw endpoint and the case page)."""
    slide_facts.withdraw_slide(me(), slide, reason, ip=client_ip(),
                               retention_days=current_app.config["SETTINGS"].withdrawn_slide_retention_days)
    forget_reader(slide.uid)


def _facts_json(slide: Slide) -> dict[str, Any]:
    cat = slide_facts.category_of(slide)
    return {"id": slide.id, "label": slide.label, "stain_category": cat.value if cat else None,
            "stain_name": slide_facts.stain_name(slide), "stain": slide.stain, "stain_display": stain_display(slide),
            "block_label": slide.block_label or "", "status": slide.status.value}


# ---------------------------------------------------------------- API
@bp.route("/api/v1/slides/<int:slide_id>/withdraw", methods=["POST"])
@authorize("slide.withdraw", load=_slide, as_arg="slide")
def api_withdraw(slide: Slide):
    """Withdraw a rejected or unwanted slide from its case before submission (audited).
    ---
    post:
      summary: Withdraw a slide (409 slide_locked after submission; 422 confirmation_required without confirm)
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [confirm], properties: {confirm: {type: boolean, description: must be true}, reason: {type: string, maxLength: 500}}}
    """
    data = json_body()
    if not _confirmed(data.get("confirm")):
        raise ValidationFailed("Send confirm: true to withdraw the slide.", code="confirmation_required",
                               details={"field": "confirm"})
    withdraw_now(slide, data.get("reason", ""))
    return jsonify({**_facts_json(slide), "withdrawn": True,
                    "purge_after": iso(slide.purge_after)})


@bp.route("/api/v1/slides/<int:slide_id>", methods=["PATCH"])
@authorize("slide.edit", load=_slide, as_arg="slide")
def api_update(slide: Slide):
    """Set a slide's stain (category and marker/stain name) and block/part label before submission.
    ---
    patch:
      summary: Edit stain and block label (409 slide_locked after submission)
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {stain_category: {type: string, enum: [he, ihc, special, fluorescence, multiplex]}, stain: {type: string, maxLength: 64, description: marker or stain name, required for ihc and special}, block_label: {type: string, maxLength: 32}}}
    """
    changes = slide_facts.change_facts(me(), slide, json_body(), ip=client_ip())
    return jsonify({**_facts_json(slide), "changes": changes})


# ---------------------------------------------------------------- case page forms
def _back(case: Case):
    return redirect(url_for("cases.detail", case_id=case.id) + "#slides-card")


@bp.route("/cases/<int:case_id>/slides/<int:slide_id>/withdraw", methods=["POST"])
@authorize("case.view", load=_case)
def page_withdraw(case_id: int, slide_id: int):
    slide = slide_facts.live_slide_of_case(case_id, slide_id)
    case, label = slide.case, slide.label
    policy.ensure(me(), "slide.withdraw", slide)  # 403 before asking for the confirmation
    try:
        if not _confirmed(request.form.get("confirm")):
            raise ValidationFailed("Confirm the withdrawal.", code="confirmation_required")
        withdraw_now(slide, request.form.get("reason", ""))
    except DomainError as exc:
        if exc.status == 404:
            raise
        if exc.status == 403:
            raise
        flash_error(exc, _("Please confirm the withdrawal.") if exc.code == "confirmation_required" else None)
        return _back(case)
    flash(_("Slide %(label)s was withdrawn from the case.", label=label), "success")
    return _back(case)


@bp.route("/cases/<int:case_id>/slides/<int:slide_id>/facts", methods=["POST"])
@authorize("case.view", load=_case)
def page_update(case_id: int, slide_id: int):
    slide = slide_facts.live_slide_of_case(case_id, slide_id)
    case = slide.case
    data = {k: v for k, v in request.form.items() if k in ("stain_category", "stain", "block_label")}
    try:
        changes = slide_facts.change_facts(me(), slide, data, ip=client_ip())
    except DomainError as exc:
        if exc.status in (403, 404):
            raise
        flash_error(exc)
        return _back(case)
    if changes:
        flash(_("Slide %(label)s: stain %(stain)s, block %(block)s saved.", label=slide.label,
                stain=stain_display(slide), block=slide.block_label or "—"), "success")
    return _back(case)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
