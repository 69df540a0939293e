"""In-app notifications, with e-mail and pluggable gateways (SMS, messaging apps) behind them.

A notification row is written in the same unit of work as the transition that caused
it, so nobody is told about a change that was rolled back.  Delivery outside the app
(e-mail when ``SMTP_URL`` is set, then every registered hook) happens after commit in
a background task, so a slow mail server never holds up a pathologist's click.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote, urlparse

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from .. import runtime
from ..catalogue import N_, render
from ..models import User, utcnow
from ..models.consultations import Consultation, Notification

log = logging.getLogger("pathology_hub.notifications")

#: kind -> message id in the catalogue (``%(case)s`` is the case number).  Only the kind and its
#: parameters are stored; the text is rendered in the reader's language when it is shown or sent
#: (:func:`text_of`), so the bell, the API and the e-mail say the same thing.
TEXTS: dict[str, str] = {
    "triage_new": N_("New consultation request waiting for triage (case %(case)s)"),
    "assigned": N_("Consultation assigned to you (case %(case)s)"),
    "info_requested": N_("The pathologist requests more information (case %(case)s)"),
    "info_answered": N_("The centre answered your request for information (case %(case)s)"),
    "escalated": N_("Consultation escalated to your hospital (case %(case)s)"),
    "reported": N_("The escalated consultation has been reported (case %(case)s)"),
    "returned": N_("Consultation result returned (case %(case)s)"),
    "frozen_page": N_("FROZEN SECTION: you are paged for case %(case)s; answer within minutes"),
    "overdue": N_("Consultation past its turnaround target (case %(case)s)"),
    "report_signed": N_("The consultation report has been signed (case %(case)s)"),
    "report_amended": N_("AMENDED RESULT: case %(case)s, version %(version)s replaces version %(previous)s"),
    "report_addendum": N_("Addendum to the result: case %(case)s, version %(version)s"),
}
#: Kinds about a result: their links open the result page, where it is read and acknowledged.
RESULT_KINDS = {"returned", "report_signed", "report_amended", "report_addendum"}
#: Lines of an amendment/addendum e-mail: (param, label message id), in this order.
CHANGE_LINES = (("reason", N_("Reason")),
                ("diagnosis", N_("Diagnosis in force (version %(version)s)")),
                ("previous_diagnosis", N_("Superseded diagnosis (version %(previous)s)")),
                ("signer", N_("Signed by")), ("institution", N_("Institution")))
READ_AND_ACKNOWLEDGE = N_("Please read the result and confirm you have read it.")
SUBJECT = N_("[Pathology Hub] %(text)s")
WITH_REASON = N_("%(text)s. Reason: %(reason)s")

Hook = Callable[[Notification, User, str], None]
#: Gateways called for every delivered notification with (notification, user, text).
HOOKS: list[Hook] = []


def register_hook(hook: Hook) -> None:
    """Add an outbound gateway (SMS, WeChat Work, DingTalk…); failures are logged, never raised."""
    HOOKS.append(hook)


def params_of(n: Notification) -> dict[str, Any]:
    try:
        return json.loads(n.params or "{}")
    except ValueError:
        return {}


def notify(session: Session, users: Iterable[User], kind: str, consultation: Consultation,
           **params: Any) -> list[Notification]:
    """One notification per distinct active user."""
    if kind not in TEXTS:
        raise ValueError(f"unknown notification kind {kind!r}")
    params.setdefault("case", consultation.case.case_number)
    out, seen = [], set()
    for user in users:
        if user is None or user.id in seen or not user.active:
            continue
        seen.add(user.id)
        n = Notification(user_id=user.id, kind=kind, consultation_id=consultation.id,
                         case_id=consultation.case_id, params=json.dumps(params, ensure_ascii=False))
        session.add(n)
        out.append(n)
    session.info.setdefault("new_notifications", []).extend(out)
    return out


def unread_count(session: Session, user: User) -> int:
    return session.scalar(select(func.count(Notification.id)).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def recent(session: Session, user: User, limit: int = 30) -> list[Notification]:
    return list(session.scalars(select(Notification).where(Notification.user_id == user.id)
                                .order_by(Notification.id.desc()).limit(limit)))


def mark_read(session: Session, user: User, ids: list[int] | None) -> int:
    """Mark the given notifications (or all when ``ids`` is None) of this user as read."""
    stmt = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    return session.execute(stmt.values(read_at=utcnow())).rowcount or 0


# ---------------------------------------------------------------- delivery outside the app
def _render_params(n: Notification) -> dict[str, Any]:
    params = params_of(n)
    params.setdefault("previous", params.get("previous_version", ""))
    return params


def text_of(n: Notification, locale: str | None, *, with_reason: bool = False) -> str:
    """The one-line text of a notification in ``locale`` (the reader's language).

    The only place notifications are put into words: the bell and API (web locale), the
    e-mail and gateways (the recipient's saved language) all call this."""
    params = _render_params(n)
    message = TEXTS.get(n.kind)
    text = render(locale, message, **params) if message else n.kind
    if with_reason and n.kind in ("report_amended", "report_addendum") and params.get("reason"):
        text = render(locale, WITH_REASON, text=text, reason=params["reason"])
    return text


def body_of(n: Notification, link: str, locale: str | None) -> str:
    """The e-mail body in ``locale``: for a new report version the change and its reason come first."""
    params = _render_params(n)
    lines = [text_of(n, locale), ""]
    if n.kind in ("report_amended", "report_addendum"):
        for key, label in CHANGE_LINES:
            if key == "previous_diagnosis" and not params.get("diagnosis_changed"):
                continue
            if params.get(key):
                lines.append(f"{render(locale, label, **params)}: {params[key]}")
        lines += ["", render(locale, READ_AND_ACKNOWLEDGE), ""]
    lines.append(link)
    return "\n".join(lines) + "\n"


def recipient_locale(user: User | None) -> str:
    """The language a person reads their notifications in: their saved choice, else Chinese."""
    return (user.locale if user is not None and user.locale else "") or "zh_CN"


def link_of(n: Notification, base_url: str = "") -> str:
    if not n.consultation_id:
        return base_url or "/"
    suffix = "/result" if n.kind in RESULT_KINDS else ""
    return f"{base_url}/consultations/{n.consultation_id}{suffix}"


def send_email(smtp_url: str, to: str, subject: str, body: str) -> None:
    """``smtp://user:pass@host:25?from=hub@example.org&starttls=1`` or ``smtps://…:465``."""
    url = urlparse(smtp_url)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    msg = EmailMessage()
    msg["From"] = query.get("from", "pathology-hub@localhost")
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    host, port = url.hostname or "localhost", url.port
    if url.scheme == "smtps":
        server: smtplib.SMTP = smtplib.SMTP_SSL(host, port or 465, timeout=20, context=ssl.create_default_context())
    else:
        server = smtplib.SMTP(host, port or 25, timeout=20)
    with server:
        if url.scheme == "smtp" and query.get("starttls", "").lower() in ("1", "true", "yes"):
            server.starttls(context=ssl.create_default_context())
        if url.username:
            server.login(unquote(url.username), unquote(url.password or ""))
        server.send_message(msg)


def deliver(session: Session, ids: list[int], smtp_url: str, base_url: str = "") -> int:
    """Send the given notifications by e-mail and through the hooks; returns how many were sent."""
    sent = 0
    for n in session.scalars(select(Notification).where(Notification.id.in_(ids),
                                                         Notification.delivered_at.is_(None))):
        user = session.get(User, n.user_id)
        locale = recipient_locale(user)
        text = text_of(n, locale)
        link = link_of(n, base_url)
        if smtp_url and user is not None and user.email:
            try:
                send_email(smtp_url, user.email, render(locale, SUBJECT, text=text), body_of(n, link, locale))
                sent += 1
            except (OSError, smtplib.SMTPException) as exc:
                log.warning("notification e-mail failed", extra={"notification_id": n.id, "error": str(exc)})
                continue  # retried by the next delivery of this id
        for hook in HOOKS:
            try:
                hook(n, user, text)
            except Exception:  # noqa: BLE001 - a broken gateway must not stop the others
                log.exception("notification hook failed", extra={"notification_id": n.id})
        n.delivered_at = utcnow()
    return sent


def _needs_delivery() -> bool:
    return bool(runtime.settings().smtp_url) or bool(HOOKS)


@event.listens_for(Session, "after_flush")
def _collect_ids(session: Session, _ctx: Any) -> None:
    pending = session.info.get("new_notifications")
    if pending:
        session.info.setdefault("notification_ids", []).extend(n.id for n in pending if n.id is not None)
        session.info["new_notifications"] = [n for n in pending if n.id is None]


@event.listens_for(Session, "after_commit")
def _dispatch(session: Session) -> None:
    ids = session.info.pop("notification_ids", None)
    session.info.pop("new_notifications", None)
    if ids and _needs_delivery():
        if not _DISPATCH:
            log.warning("notifications not dispatched: bootstrap.wire() did not run", extra={"count": len(ids)})
            return
        _DISPATCH[0](ids)


#: Hands new notification ids to delivery (the worker's task). Set by ``bootstrap.py`` so
#: the domain never imports the queue.
_DISPATCH: list[Callable[[list[int]], Any]] = []


def set_dispatcher(fn: Callable[[list[int]], Any]) -> None:
    _DISPATCH[:] = [fn]


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("notification_ids", None)
    session.info.pop("new_notifications", None)
