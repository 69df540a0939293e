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
from ..models import User, utcnow
from ..models.consultations import Consultation, Notification

log = logging.getLogger("pathology_hub.notifications")

#: kind -> (English, Chinese) one-line text; ``{case}`` is the case number.  The web layer
#: renders the same kinds through Flask-Babel; these are for e-mail and gateways.
TEXTS: dict[str, tuple[str, str]] = {
    "triage_new": ("New consultation request waiting for triage (case {case})", "新的会诊申请待分诊（病例 {case}）"),
    "assigned": ("Consultation assigned to you (case {case})", "会诊已分配给您（病例 {case}）"),
    "info_requested": ("The pathologist requests more information (case {case})", "病理医师要求补充资料（病例 {case}）"),
    "info_answered": ("The centre answered your request for information (case {case})", "申请方已补充资料（病例 {case}）"),
    "escalated": ("Consultation escalated to your hospital (case {case})", "会诊已上转至贵院（病例 {case}）"),
    "reported": ("The escalated consultation has been reported (case {case})", "上转会诊已出具意见（病例 {case}）"),
    "returned": ("Consultation result returned (case {case})", "会诊结果已回传（病例 {case}）"),
    "overdue": ("Consultation past its turnaround target (case {case})", "会诊已超出时限（病例 {case}）"),
    "report_signed": ("The consultation report has been signed (case {case})", "会诊报告已签发（病例 {case}）"),
    "report_amended": ("AMENDED RESULT: case {case}, version {version} replaces version {previous_version}",
                       "更正报告：病例 {case} 第 {version} 版已取代第 {previous_version} 版"),
    "report_addendum": ("Addendum to the result: case {case}, version {version}",
                        "补充报告：病例 {case} 第 {version} 版"),
}
#: Kinds about a result: their links open the result page, where it is read and acknowledged.
RESULT_KINDS = {"returned", "report_signed", "report_amended", "report_addendum"}
#: Lines of an amendment/addendum e-mail: (param, English label, Chinese label), in this order.
CHANGE_LINES = (("reason", "Reason", "原因"),
                ("diagnosis", "Diagnosis in force (version {version})", "现行诊断（第 {version} 版）"),
                ("previous_diagnosis", "Superseded diagnosis (version {previous_version})",
                 "已被取代的诊断（第 {previous_version} 版）"),
                ("signer", "Signed by", "签发医师"), ("institution", "Institution", "签发机构"))

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
class _Params(dict):
    def __missing__(self, key: str) -> str:
        return ""


def text_of(n: Notification) -> str:
    en, zh = TEXTS[n.kind]
    params = _Params(params_of(n))
    return f"{zh.format_map(params)} / {en.format_map(params)}"


def body_of(n: Notification, link: str) -> str:
    """The e-mail body: for a new report version the change and its reason come first, in both languages."""
    params = _Params(params_of(n))
    lines = [text_of(n), ""]
    if n.kind in ("report_amended", "report_addendum"):
        for key, en, zh in CHANGE_LINES:
            if key == "previous_diagnosis" and not params.get("diagnosis_changed"):
                continue
            if params.get(key):
                lines.append(f"{zh.format_map(params)} / {en.format_map(params)}: {params[key]}")
        lines += ["", "请阅读更正后的结果并确认已阅。 / Please read the result and confirm you have read it.", ""]
    lines.append(link)
    return "\n".join(lines) + "\n"


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
        text = text_of(n)
        link = link_of(n, base_url)
        if smtp_url and user is not None and user.email:
            try:
                send_email(smtp_url, user.email, f"[Pathology Hub] {text}", body_of(n, link))
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
