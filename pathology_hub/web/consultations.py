"""Consultation requests over HTTP: JSON API, pages, worklists, the bell and the TAT dashboard.

Handlers stay thin: the state machine (domain/consultations.py) decides what may
happen, in the order 404 (not visible) → 409 (not allowed in this state) → 403 → 422.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from flask import Blueprint, Flask, Response, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..domain import consultation_views as views
from ..domain import consultations as svc
from ..domain import notifications as notes
from ..domain import lookup, policy, results, turnaround, worklists
from ..domain.errors import DomainError, ValidationFailed
from . import charts
from .errors import flash_error, message_of
from .subspecialties import label as subspecialty_label
from .authz import authorize, me
from .security import client_ip
from .serializers import iso

if TYPE_CHECKING:
    from ..models import Case, User
    from ..models.consultations import Consultation, Notification

bp = Blueprint("consultations", __name__)
_case = lookup.loader("case", "case_id")
_consultation = lookup.loader("consultation", "consultation_id")

STATE_LABELS = {"draft": _l("draft"), "triage": _l("in triage"), "assigned": _l("assigned"),
                "in_review": _l("in review"), "info_requested": _l("information requested"),
                "escalated": _l("escalated"), "reported": _l("reported"), "returned": _l("returned"),
                "acknowledged": _l("acknowledged"), "cancelled": _l("cancelled")}
ACTION_LABELS = {"submit": _l("Submit for consultation"), "assign": _l("Assign"), "accept": _l("Accept"),
                 "decline": _l("Decline"), "request_info": _l("Request information"),
                 "answer_info": _l("Answer the request"), "escalate": _l("Escalate"),
                 "mark_reported": _l("Mark reported"), "return_result": _l("Return the result"),
                 "acknowledge": _l("Acknowledge"), "cancel": _l("Cancel the request"),
                 "create": _l("Request created"), "child_reported": _l("Escalation reported"),
                 "result_amended": _l("Result amended: a new report version was signed"),
                 "legacy_opinion": _l("Opinion recorded before signed reports (not a signed result)"),
                 "live_chat": _l("Live-session chat")}
FLAG_LABELS = {"ok": _l("on time"), "approaching": _l("approaching target"), "overdue": _l("overdue"),
               "met": _l("target met"), "missed": _l("target missed")}
LIST_LABELS = {"technician": _l("Consultations needing the centre"), "triage": _l("Waiting for triage"),
               "pathologist": _l("Assigned to me"), "clinician": _l("Results for my requests")}
#: Assignment reasons recorded by the state machine (history column).
REASON_LABELS = {"auto": _l("automatic"), "requested expert": _l("requested expert"),
                 "auto_no_subspecialty_match": _l("automatic; no pathologist has the subspecialty"),
                 "no_subspecialty_match": _l("no pathologist has the subspecialty")}
STAGE_LABELS = {"submitted_to_assigned": _l("submitted → assigned"), "assigned_to_accepted": _l("assigned → accepted"),
                "accepted_to_reported": _l("accepted → reported"),
                "reported_to_acknowledged": _l("reported → acknowledged")}

#: Notes the state machine writes itself ("v2", "v2 (amendment)"): shown in the reader's language.
_SYSTEM_NOTE = re.compile(r"^v(\d+)(?: \((\w+)\))?$")
_NOTE_KINDS = {"original": _l("original report"), "addendum": _l("addendum"), "amendment": _l("amendment")}


def event_comment(e: Any) -> str:
    """The comment of a history row: a person's words as typed, the system's version notes translated."""
    match = _SYSTEM_NOTE.match(e.comment or "") if e.transition in ("acknowledge", "result_amended") else None
    if not match:
        return e.comment
    number, kind = match.groups()
    if kind:
        return _("version %(n)s (%(kind)s)", n=number, kind=_NOTE_KINDS.get(kind, kind))
    return _("version %(n)s", n=number)


def _note_text(n: Notification) -> str:
    """The notification in the reader's language (rendered by the domain's one renderer)."""
    return notes.text_of(n, str(get_locale() or ""), with_reason=True)



def _data() -> dict[str, Any]:
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
        return data
    return request.form.to_dict()


# ---------------------------------------------------------------- JSON shapes
def _person(u: User | None) -> dict | None:
    return {"id": u.id, "username": u.username, "full_name": u.full_name, "institution": u.institution.code} if u else None


def _result_json(c: Consultation) -> dict[str, Any] | None:
    """The result in force, from the report versions (``None`` before a version is signed)."""
    result = views.result_of(c)
    return result.as_json() if result is not None else None


def consultation_json(c: Consultation, viewer: User, *, full: bool = False) -> dict[str, Any]:
    tat = views.tat_now(c)
    data = {
        "id": c.id, "case_id": c.case_id, "case_number": c.case.case_number, "parent_id": c.parent_id,
        "state": c.state.value, "priority": c.priority.value, "subspecialty": c.subspecialty,
        "subspecialty_label": subspecialty_label(c.subspecialty) or None,
        "requesting_institution": c.requesting_institution.code, "origin_institution": c.case.institution.code,
        "receiving_institution": c.receiving_institution.code if c.receiving_institution else None,
        "assignee": _person(c.assignee), "requested_expert": _person(c.requested_expert),
        "created_at": iso(c.created_at), "submitted_at": iso(c.submitted_at), "assigned_at": iso(c.assigned_at),
        "accepted_at": iso(c.accepted_at), "reported_at": iso(c.reported_at), "returned_at": iso(c.returned_at),
        "acknowledged_at": iso(c.acknowledged_at), "tat": tat.as_json() if tat else None,
        "allowed": svc.allowed_from(c.state), "actions": svc.actions_for(viewer, c),
        "url": url_for("consultations.detail_page", consultation_id=c.id),
        "result": _result_json(c),
    }
    if full:
        more = views.detail_of(c)
        data.update({"question": c.question, "preliminary_opinion": c.preliminary_opinion,
                     "preliminary_opinions": [p.as_json() for p in more.preliminaries],
                     "follow_up_advice": c.follow_up_advice, "cancel_reason": c.cancel_reason,
                     "children": [k.id for k in more.children],
                     "events": [{"transition": e.transition, "from": e.from_state, "to": e.to_state,
                                 "actor": e.actor.username if e.actor else None, "at": iso(e.at),
                                 "reason": e.reason, "comment": e.comment} for e in more.history]})
    return data


def item_json(item: worklists.Item, viewer: User) -> dict[str, Any]:
    data = consultation_json(item.consultation, viewer)
    data.update({"age_hours": round(item.age_seconds / 3600, 2), "flag": item.flag})
    return data


# ---------------------------------------------------------------- API: requests
@bp.route("/api/v1/cases/<int:case_id>/consultations", methods=["GET"])
@authorize("case.view", load=_case, as_arg="case")
def api_case_consultations(case: Case):
    """Consultation requests on a case that the user may see.
    ---
    get:
      summary: List the consultation requests of a case
    """
    items = views.on_case(me(), case)
    return jsonify({"consultations": [consultation_json(c, me()) for c in items]})


@bp.route("/api/v1/cases/<int:case_id>/consultations", methods=["POST"])
@authorize("case.view", load=_case, as_arg="case")
def api_create(case: Case):
    """Create a draft consultation request (technician or clinician of the case's centre).
    ---
    post:
      summary: Create a consultation request
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [question], properties: {question: {type: string}, subspecialty: {type: string, description: a code from /api/v1/subspecialties (422 unknown_subspecialty otherwise)}, priority: {type: string, enum: [routine, urgent, frozen]}, expert_id: {type: integer, description: a pathologist of a higher-tier institution in the chain; the request is pre-assigned to them}}}
      responses:
        201: {description: created (state draft)}
    """
    c = views.create_request(me(), case, _data(), ip=client_ip())
    return jsonify(consultation_json(c, me(), full=True)), 201


@bp.route("/api/v1/consultations/<int:consultation_id>", methods=["GET"])
@authorize("consultation.view", load=_consultation, as_arg="c")
def api_get(c: Consultation):
    """One consultation request with its history and the transitions the user may perform.
    ---
    get:
      summary: Get a consultation request
    """
    return jsonify(consultation_json(c, me(), full=True))


TRANSITION_FIELDS = {"submit": "acknowledge_warnings: {type: boolean}",
                     "assign": "assignee_id: {type: integer, description: omit to auto-assign to the least-loaded pathologist with the subspecialty (or, when nobody has it, of the institution)}",
                     "decline": "reason: {type: string}", "request_info": "comment: {type: string}",
                     "answer_info": "comment: {type: string}",
                     "escalate": "preliminary_opinion: {type: string}, expert_id: {type: integer}",
                     "return_result": "follow_up_advice: {type: string}",
                     "acknowledge": "version: {type: integer, description: the report version read; must be the one in force (409 result_version_outdated)}",
                     "cancel": "reason: {type: string}"}


def _transition_view(name: str) -> Callable:
    def view(c: Consultation):
        extra = views.transition(me(), c, name, _data(), ip=client_ip())
        return jsonify({**consultation_json(c, me(), full=True), **extra})
    fields = TRANSITION_FIELDS.get(name)
    body = (f"\n      requestBody:\n        content:\n          application/json:\n"
            f"            schema: {{type: object, properties: {{{fields}}}}}") if fields else ""
    view.__doc__ = (f"Transition ``{name}`` of a consultation request.\n    ---\n    post:\n"
                    f"      summary: {name.replace('_', ' ').capitalize()} (409 invalid_transition lists the allowed ones){body}\n")
    view.__name__ = f"api_{name}"
    return authorize("consultation.view", load=_consultation, as_arg="c")(view)


for _name in svc.PUBLIC_TRANSITIONS:
    bp.add_url_rule(f"/api/v1/consultations/<int:consultation_id>/{_name.replace('_', '-')}",
                    endpoint=f"api_{_name}", view_func=_transition_view(_name), methods=["POST"])


# ---------------------------------------------------------------- API: worklist, turnaround, notifications
@bp.route("/api/v1/worklist")
@authorize("worklist.view")
def api_worklist():
    """The current user's worklists, flagged against turnaround targets.
    ---
    get:
      summary: Worklists per role (technician, triage, pathologist, clinician)
      parameters:
        - {name: priority, in: query, schema: {type: string, enum: [routine, urgent, frozen]}}
        - {name: state, in: query, schema: {type: string}}
        - {name: institution, in: query, schema: {type: string}, description: code of the originating or requesting institution}
        - {name: older_than_hours, in: query, schema: {type: number}}
        - {name: flag, in: query, schema: {type: string, enum: [ok, approaching, overdue]}}
        - {name: sort, in: query, schema: {type: string, enum: [priority, state, age, institution]}}
        - {name: order, in: query, schema: {type: string, enum: [asc, desc]}}
    """
    lists = views.my_worklists(me(), worklists.Filters.parse(request.args.to_dict()))
    return jsonify({"worklists": {name: [item_json(i, me()) for i in items] for name, items in lists.items()}})


@bp.route("/api/v1/turnaround")
@authorize("turnaround.view")
def api_turnaround():
    """Turnaround per stage (median and 90th percentile hours), per institution and per pathologist (admin).
    ---
    get:
      summary: Turnaround dashboard data
      parameters:
        - {name: format, in: query, schema: {type: string, enum: [json, csv]}}
    """
    data = views.turnaround_dashboard().data
    if request.args.get("format") == "csv":
        return Response(turnaround.dashboard_csv(data), mimetype="text/csv",
                        headers={"Content-Disposition": "attachment; filename=turnaround.csv"})
    return jsonify({"stages": list(turnaround.STAGES), **data})


@bp.route("/api/v1/notifications")
@authorize("notification.list")
def api_notifications():
    """The user's recent notifications and unread count (polled by the bell every 30 s).
    ---
    get:
      summary: List notifications
    """
    recent, unread = views.inbox(me())
    items = [{"id": n.id, "kind": n.kind, "text": _note_text(n), "consultation_id": n.consultation_id,
              "url": notes.link_of(n) if n.consultation_id else None, "params": notes.params_of(n),
              "created_at": iso(n.created_at), "read": n.read_at is not None} for n in recent]
    return jsonify({"unread": unread, "notifications": items})


@bp.route("/api/v1/notifications/read", methods=["POST"])
@authorize("notification.list")
def api_notifications_read():
    """Mark notifications as read: ``{"ids": [..]}`` or ``{"all": true}``.
    ---
    post:
      summary: Mark notifications read
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {ids: {type: array, items: {type: integer}}, all: {type: boolean}}}
    """
    data = _data()
    ids = data.get("ids")
    if data.get("all") is True:
        ids = None
    elif not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise ValidationFailed("Send ids (a list of integers) or all: true.", code="invalid_field")
    changed, unread = views.mark_read(me(), ids)
    return jsonify({"marked": changed, "unread": unread})


# ---------------------------------------------------------------- pages
@bp.route("/consultations/<int:consultation_id>")
@authorize("consultation.view", load=_consultation, as_arg="c")
def detail_page(c: Consultation):
    page = views.detail_page(me(), c)
    return render_template("consultation_detail.html", c=c, actions=page.actions, history=page.history,
                           children=page.children, tat=page.tat, candidates=page.candidates,
                           no_subspecialty_match=page.no_subspecialty_match, experts=page.experts,
                           warnings=page.warnings)


@bp.route("/consultations/<int:consultation_id>/act", methods=["POST"])
@authorize("consultation.view", load=_consultation, as_arg="c")
def act_page(c: Consultation):
    """Every action form posts here with ``transition``; errors come back as a message."""
    name = request.form.get("transition", "")
    back = "consultations.result_page" if name == "acknowledge" else "consultations.detail_page"
    try:
        extra = views.transition(me(), c, name, request.form.to_dict(), ip=client_ip())
    except DomainError as exc:
        if exc.status == 404:
            raise
        flash_error(exc, _error_text(exc))
        return redirect(url_for(back, consultation_id=c.id))
    if name == "acknowledge":
        flash(_("You confirmed that you have read version %(n)s of the result.", n=extra.get("acknowledged_version", "")),
              "success")
        return redirect(url_for(back, consultation_id=c.id))
    flash(_("Done: %(action)s.", action=ACTION_LABELS.get(name, name)), "success")
    if "child_id" in extra:
        return redirect(url_for("consultations.detail_page", consultation_id=c.id))
    if policy.can(me(), "consultation.view", c):
        return redirect(url_for("consultations.detail_page", consultation_id=c.id))
    return redirect(url_for("main.home"))  # e.g. after declining: the request is no longer ours to see


def _error_text(exc: DomainError) -> str:
    """The refusals a clinician meets on the result page, in their language."""
    if exc.code == "result_version_outdated":
        return _("A newer version of the result (version %(n)s) was signed while you were reading; "
                 "read it and confirm again.", n=exc.details.get("in_force", ""))
    if exc.code == "no_signed_result":
        return _("There is no signed result to acknowledge yet.")
    return message_of(exc)


@bp.route("/consultations/<int:consultation_id>/result")
@authorize("consultation.view", load=_consultation, as_arg="c")
def result_page(c: Consultation):
    """The result for the referring centre, read from the report versions.  Reading never acknowledges:
    the clinician confirms with the "I have read this result" button (a POST for one version)."""
    page = views.result_page(me(), c)
    return render_template("consultation_result.html", c=c, result=page.result, preliminaries=page.preliminaries,
                           can_acknowledge=page.can_acknowledge)


@bp.route("/cases/<int:case_id>/consultations", methods=["POST"])
@authorize("case.view", load=_case, as_arg="case")
def create_page(case: Case):
    try:
        c = views.create_request(me(), case, request.form.to_dict(), ip=client_ip())
    except DomainError as exc:
        flash_error(exc)
        return redirect(url_for("cases.detail", case_id=case.id))
    flash(_("Consultation request created as a draft."), "success")
    return redirect(url_for("consultations.detail_page", consultation_id=c.id))


@bp.route("/admin/turnaround")
@authorize("turnaround.view")
def turnaround_page():
    board = views.turnaround_dashboard(with_names=True)
    return render_template("consultation_turnaround.html", data=board.data, targets=turnaround.targets(),
                           charts=_turnaround_charts(board.data, board.names))


def _turnaround_charts(data: dict[str, list[dict[str, Any]]],
                       names: dict[str, dict[str, str]]) -> dict[str, list[charts.Chart]]:
    """SVG charts of the dashboard rows, labelled with institution names and pathologists' full names."""
    text = charts.ChartText(median=_("Median"), p90=_("90th percentile"), hours=_("hours"), days=_("days"),
                            hours_short=_("h"), days_short=_("d"))
    return charts.turnaround_charts(data, turnaround.STAGES, names=names, text=text,
                                    stage_label=lambda s: str(STAGE_LABELS.get(s, s)))


# ---------------------------------------------------------------- template helpers
def _my_worklists() -> dict[str, list[worklists.Item]]:
    user = me()
    if not user.is_authenticated:
        return {}
    try:
        filters = worklists.Filters.parse(request.args.to_dict())
    except ValidationFailed:
        filters = worklists.Filters()  # a hand-edited query string must not break the home page
    return views.my_worklists(user, filters)


def _case_panel(case: Case) -> dict[str, Any]:
    return views.case_panel(me(), case)


def _result_of(c: Consultation) -> results.Result | None:
    """For templates: the result in force of a request (worklists, case panel, pages)."""
    return views.result_of(c)


def _preliminaries_of(c: Consultation) -> list[results.Preliminary]:
    return views.preliminaries_of(c)


def _unread() -> int:
    user = me()
    return views.unread(user) if user.is_authenticated else 0


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(_my_worklists, "consultation_worklists")
    app.add_template_global(_case_panel, "consultation_panel_data")
    app.add_template_global(_unread, "unread_notifications")
    app.add_template_global(lambda s: STATE_LABELS.get(getattr(s, "value", s), s), "consultation_state_label")
    app.add_template_global(lambda a: ACTION_LABELS.get(a, a), "consultation_action_label")
    app.add_template_global(lambda f: FLAG_LABELS.get(f, f), "tat_flag_label")
    app.add_template_global(lambda n: LIST_LABELS.get(n, n), "worklist_label")
    app.add_template_global(lambda s: STAGE_LABELS.get(s, s), "tat_stage_label")
    app.add_template_global(_result_of, "consultation_result")
    app.add_template_global(_preliminaries_of, "preliminary_opinions")
    app.add_template_global(lambda r: REASON_LABELS.get(r, r), "consultation_reason_label")
    app.add_template_global(event_comment, "consultation_event_comment")
