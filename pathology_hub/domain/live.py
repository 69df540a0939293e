"""Live session on a consultation: who presents, who is there, who asked for control.

One participant presents; everyone else follows the presenter's view. The state is small and
pure (no Flask, no database) so every web process can hold a copy and replace it from the
snapshots that cross the fan-out channel (domain/live_hub.py). Operations return the messages
to broadcast; the caller publishes them.

A participant may hold several connections (two tabs, a reconnect racing the old socket): they
stay present until the last one closes, which is what makes a dropped-and-restored follower
reappear without the others seeing a leave/join flicker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import Forbidden, ValidationFailed

# View-state keys a presenter may send, with the bounds a sane viewer stays within.
VIEW_KEYS = ("slideId", "x", "y", "magnification", "zoom", "rotation", "brightness", "contrast", "gamma")
MAX_CHAT_CHARS = 2000


@dataclass
class Participant:
    user_id: int
    name: str
    role: str
    connections: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"userId": self.user_id, "name": self.name, "role": self.role}


@dataclass
class LiveSession:
    """The state of one consultation's live session."""

    consultation_id: int
    presenter_id: int | None = None
    participants: dict[int, Participant] = field(default_factory=dict)
    requests: list[int] = field(default_factory=list)   # users who asked for control, oldest first
    view: dict[str, Any] | None = None
    version: int = 0

    # ------------------------------------------------------------ snapshots
    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "state", "consultationId": self.consultation_id, "presenterId": self.presenter_id,
            "participants": [p.to_json() | {"connections": p.connections} for p in self.participants.values()],
            "requests": list(self.requests), "view": self.view, "version": self.version,
        }

    @classmethod
    def from_snapshot(cls, data: dict[str, Any]) -> "LiveSession":
        session = cls(consultation_id=int(data["consultationId"]), presenter_id=data.get("presenterId"),
                      requests=[int(u) for u in data.get("requests") or []], view=data.get("view"),
                      version=int(data.get("version") or 0))
        for p in data.get("participants") or []:
            session.participants[int(p["userId"])] = Participant(int(p["userId"]), str(p["name"]), str(p["role"]),
                                                                 int(p.get("connections") or 1))
        return session

    def _changed(self) -> list[dict[str, Any]]:
        self.version += 1
        return [self.snapshot()]

    # ------------------------------------------------------------ presence
    def join(self, user_id: int, name: str, role: str) -> list[dict[str, Any]]:
        """Add a connection; the first one to arrive in an empty session presents."""
        p = self.participants.get(user_id)
        if p is not None:
            p.connections += 1
            return []   # a second tab or a reconnect: nobody else needs to hear about it
        self.participants[user_id] = Participant(user_id, name, role)
        if self.presenter_id is None:
            self.presenter_id = user_id
        return self._changed()

    def leave(self, user_id: int) -> list[dict[str, Any]]:
        """Drop a connection; at the last one the user leaves, and a leaving presenter hands
        control to whoever asked first, or else to whoever has been there longest."""
        p = self.participants.get(user_id)
        if p is None:
            return []
        p.connections -= 1
        if p.connections > 0:
            return []
        del self.participants[user_id]
        self.requests = [u for u in self.requests if u != user_id]
        if self.presenter_id == user_id:
            waiting = [u for u in self.requests if u in self.participants]
            if waiting:
                self.presenter_id = waiting[0]
            else:
                self.presenter_id = next(iter(self.participants), None)
            self.requests = [u for u in self.requests if u != self.presenter_id]
        return self._changed()

    def is_present(self, user_id: int) -> bool:
        return user_id in self.participants

    # ------------------------------------------------------------ control
    def request_control(self, user_id: int) -> list[dict[str, Any]]:
        self._ensure_present(user_id)
        if user_id == self.presenter_id or user_id in self.requests:
            return []
        self.requests.append(user_id)
        return self._changed()

    def hand_over(self, actor_id: int, to_user_id: Any) -> list[dict[str, Any]]:
        """The presenter gives control to a participant (usually one who asked)."""
        self._ensure_presenter(actor_id)
        try:
            target = int(to_user_id)
        except (TypeError, ValueError):
            raise ValidationFailed("Choose a participant to hand control to.", code="live_bad_target") from None
        if target not in self.participants:
            raise ValidationFailed("Choose a participant to hand control to.", code="live_bad_target")
        if target == actor_id:
            return []
        self.presenter_id = target
        self.requests = [u for u in self.requests if u != target]
        return self._changed()

    # ------------------------------------------------------------ what crosses the network
    def set_view(self, actor_id: int, view: Any) -> list[dict[str, Any]]:
        """The presenter's view; only known keys with finite numbers are kept (bounded size)."""
        self._ensure_presenter(actor_id)
        clean = clean_view(view)
        self.view = clean
        return [{"type": "view", "view": clean, "presenterId": actor_id}]

    def pointer(self, actor_id: int, data: Any) -> list[dict[str, Any]]:
        self._ensure_presenter(actor_id)
        if not isinstance(data, dict):
            raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
        if data.get("x") is None:
            return [{"type": "pointer", "userId": actor_id, "x": None, "y": None}]
        x, y = _number(data.get("x")), _number(data.get("y"))
        return [{"type": "pointer", "userId": actor_id, "x": x, "y": y}]

    def _ensure_present(self, user_id: int) -> None:
        if user_id not in self.participants:
            raise Forbidden("Join the live session first.", code="live_not_joined")

    def _ensure_presenter(self, user_id: int) -> None:
        self._ensure_present(user_id)
        if user_id != self.presenter_id:
            raise Forbidden("Only the presenter can do this; ask for control first.", code="live_not_presenter")


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
    return float(value)


def clean_view(view: Any) -> dict[str, Any]:
    """Keep only the view keys the viewer knows, as finite numbers (slide id as an int)."""
    if not isinstance(view, dict):
        raise ValidationFailed("This live-session message is not understood.", code="live_bad_message")
    clean: dict[str, Any] = {}
    for key in VIEW_KEYS:
        if view.get(key) is None:
            continue
        number = _number(view[key])
        clean[key] = int(number) if key == "slideId" else round(number, 6)
    return clean


def chat_text(value: Any) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise ValidationFailed("Write a message first.", code="live_empty_chat")
    if len(text) > MAX_CHAT_CHARS:
        raise ValidationFailed("A chat message may be at most %(limit)s characters.", code="live_chat_too_long",
                               params={"limit": MAX_CHAT_CHARS})
    return text
