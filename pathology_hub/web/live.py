"""Live session endpoints: a WebSocket, and Server-Sent Events + POST where WebSocket is blocked.

Handlers only translate between the wire and the domain: access and audit live in
domain/live_access.py, the session state in domain/live.py, the fan-out in domain/live_hub.py.
Each WebSocket or event stream holds one gunicorn thread (``gthread`` worker, see
gunicorn.conf.py) for as long as it is open.

Wire messages are small JSON objects with a ``type``: from the browser ``view``, ``pointer``,
``request`` (ask for control), ``handover``, ``chat``, ``annotations`` (the annotations of a
slide changed), ``ping``; to the browser ``hello``, ``state``, ``view``, ``pointer``, ``chat``,
``annotations``, ``error``, ``pong``.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, jsonify, request, stream_with_context
from flask_sock import Sock

from ..domain import live_access
from ..domain.errors import DomainError, ValidationFailed
from ..domain.live_hub import LocalHub, make_hub
from ..domain.unit_of_work import finish
from .authz import me
from .errors import message_of
from .security import client_ip

log = logging.getLogger(__name__)
bp = Blueprint("live", __name__)
sock = Sock()

HEARTBEAT_SECONDS = 15.0
MAX_MESSAGE_BYTES = 8 * 1024   # a view-state message is ~150 bytes; a chat line at most 2000 characters


def hub() -> LocalHub:
    return current_app.extensions["live_hub"]


def _channel(consultation_id: int) -> str:
    return f"consultation:{consultation_id}"


def _member(consultation_id: int) -> tuple[Any, live_access.Member]:
    user = me()
    if user is None:
        raise ValidationFailed("Sign in first.", code="live_not_signed_in")
    return user, live_access.member(user, consultation_id)


def _error(exc: DomainError) -> dict[str, Any]:
    return {"type": "error", "code": exc.code, "message": message_of(exc)}


def _handle(user: Any, m: live_access.Member, message: Any) -> dict[str, Any] | None:
    """Apply one message from a participant; returns a direct answer for that connection, if any."""
    if not isinstance(message, dict):
        raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
    kind = message.get("type")
    channel = _channel(m.consultation_id)
    h = hub()
    if kind == "ping":
        return {"type": "pong", "t": message.get("t")}
    if kind == "view":
        h.presenter_says(channel, m.consultation_id, lambda s: s.set_view(m.user_id, message.get("view")))
    elif kind == "pointer":
        h.presenter_says(channel, m.consultation_id, lambda s: s.pointer(m.user_id, message))
    elif kind == "request":
        h.update(channel, m.consultation_id, lambda s: s.request_control(m.user_id))
    elif kind == "handover":
        h.update(channel, m.consultation_id, lambda s: s.hand_over(m.user_id, message.get("to")))
    elif kind == "chat":
        if not h.state(channel, m.consultation_id).is_present(m.user_id):
            raise ValidationFailed("Join the live session first.", code="live_not_joined")
        h.publish(channel, live_access.post_chat(user, m, message.get("text")))
        finish()
    elif kind == "annotations":
        session = h.state(channel, m.consultation_id)
        if not session.is_present(m.user_id):
            raise ValidationFailed("Join the live session first.", code="live_not_joined")
        slide_id = message.get("slideId")
        if not isinstance(slide_id, int):
            raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
        h.publish(channel, {"type": "annotations", "slideId": slide_id, "userId": m.user_id})
    else:
        raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
    return None


def _hello(user: Any, m: live_access.Member) -> dict[str, Any]:
    state = hub().state(_channel(m.consultation_id), m.consultation_id)
    return {"type": "hello", "me": m.user_id, "state": state.snapshot(),
            "chat": live_access.chat_history(user, m)}


class _Connection:
    """Join on open, leave on close, with the audit entries, for either transport."""

    def __init__(self, user: Any, m: live_access.Member, transport: str) -> None:
        self.user, self.m, self.transport = user, m, transport
        self.ip = client_ip()
        self.sub = hub().subscribe(_channel(m.consultation_id))

    def open(self) -> dict[str, Any]:
        live_access.record_presence(self.user, self.m, "live.joined", ip=self.ip, transport=self.transport)
        hub().update(_channel(self.m.consultation_id), self.m.consultation_id,
                     lambda s: s.join(self.m.user_id, self.m.name, self.m.role))
        hello = _hello(self.user, self.m)
        finish()   # no database session is held while the connection stays open
        return hello

    def close(self) -> None:
        self.sub.close()
        try:
            hub().update(_channel(self.m.consultation_id), self.m.consultation_id,
                         lambda s: s.leave(self.m.user_id))
            live_access.record_presence(self.user, self.m, "live.left", ip=self.ip, transport=self.transport)
        except Exception:  # the connection is gone either way; the log says why the audit is missing
            log.exception("live leave failed", extra={"consultation_id": self.m.consultation_id})
        finally:
            finish()


@bp.route("/consultations/<int:consultation_id>/live/events")
def events(consultation_id: int):
    """Server-Sent Events: the fallback where a proxy or firewall refuses WebSocket."""
    user, m = _member(consultation_id)
    app = current_app._get_current_object()
    conn = _Connection(user, m, "sse")
    hello = conn.open()

    def stream() -> Iterator[str]:
        try:
            yield f"data: {json.dumps(hello, ensure_ascii=False)}\n\n"
            while True:
                message = conn.sub.get(timeout=HEARTBEAT_SECONDS)
                if message is None:
                    if conn.sub.closed:
                        return
                    yield ": keep-alive\n\n"
                    continue
                yield f"data: {json.dumps(message, ensure_ascii=False)}\n\n"
        finally:
            with app.app_context():
                conn.close()

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.route("/consultations/<int:consultation_id>/live/send", methods=["POST"])
def send(consultation_id: int):
    """One message from an SSE participant (the WebSocket carries these itself)."""
    user, m = _member(consultation_id)
    if not hub().state(_channel(consultation_id), consultation_id).is_present(m.user_id):
        raise ValidationFailed("Join the live session first.", code="live_not_joined")
    answer = _handle(user, m, request.get_json(silent=True))
    return jsonify(answer or {"ok": True})


@sock.route("/consultations/<int:consultation_id>/live", bp=bp)
def socket(ws: Any, consultation_id: int) -> None:
    """The WebSocket: a reader loop here, a writer thread delivering the channel's messages."""
    try:
        user, m = _member(consultation_id)
    except DomainError as exc:
        ws.send(json.dumps(_error(exc), ensure_ascii=False))
        ws.close(reason=1008, message=exc.code)
        return
    conn = _Connection(user, m, "websocket")
    ws.send(json.dumps(conn.open(), ensure_ascii=False))
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            message = conn.sub.get(timeout=HEARTBEAT_SECONDS)
            if message is None:
                if conn.sub.closed:
                    break
                continue
            try:
                ws.send(json.dumps(message, ensure_ascii=False))
            except Exception:   # the socket closed under us: the reader loop ends too
                break
        stop.set()

    thread = threading.Thread(target=writer, name=f"live-ws-{consultation_id}", daemon=True)
    thread.start()
    try:
        while not stop.is_set():
            raw = ws.receive(timeout=HEARTBEAT_SECONDS * 2)
            if raw is None:
                if not ws.connected:
                    break
                continue
            answer = _receive(user, m, raw)
            if answer is not None:
                ws.send(json.dumps(answer, ensure_ascii=False))
    finally:
        stop.set()
        conn.close()
        thread.join(timeout=2)


def _receive(user: Any, m: live_access.Member, raw: Any) -> dict[str, Any] | None:
    try:
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
        try:
            message = json.loads(raw)
        except ValueError:
            raise ValidationFailed("This live-session message is not understood.", code="live_bad_message") from None
        return _handle(user, m, message)
    except DomainError as exc:
        return _error(exc)
    finally:
        finish()


def viewer_config(case: Any) -> dict[str, Any]:
    """What the viewer's live panel needs: the consultations this user may hold a session on."""
    return {"consultations": live_access.live_consultations(me(), case),
            "wsPath": "/consultations/{id}/live", "ssePath": "/consultations/{id}/live/events",
            "sendPath": "/consultations/{id}/live/send"}


def init_app(app: Flask, *, hub_factory: Callable[[str], Any] = make_hub) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["live_hub"] = hub_factory(settings.live_redis_url)
    app.register_blueprint(bp)
