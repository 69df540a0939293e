"""Sampled audit of refused access: who asked for which protected object and was told 403/404.

A user of another institution who opens a case's viewer, a deep link, a slide's tiles,
a consultation or a report gets 404 (the object's existence is not confirmed), which is
right, but an administrator must still be able to see such probing.  One audit entry per
refused request would let a script flood the trail (a refused viewer asks for hundreds
of tiles), so refusals are sampled like slide views (``domain/view_audit.py``): each one
is *noted* in memory (a dict update under a lock, no I/O) and the notes are written as one
``access.refused`` entry per (user, object) and window::

    details = {"count": n, "statuses": {"404": n}, "actions": ["slide.view"],
               "paths": ["/api/v1/tiles/…/slide.dzi"], "since": ISO, "until": ISO}

``actions`` are the policy actions that said no, ``paths`` the first few distinct URL paths
(query strings are dropped).  The window is ``VIEW_AUDIT_WINDOW_SECONDS``.

Only refusals decided by the policy about an object that exists are noted: a user who
follows a stale link to an object that no longer exists is not probing anything, and a
legitimate user never triggers one.  The same limits as for slide views apply: the
aggregate lives in the process (one entry per process and window with several workers),
and notes not yet flushed are lost if the process is killed; a failed write keeps them
for the next flush.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.orm import Session

from ..models import User
from ..models.base import utcnow

log = logging.getLogger("pathology_hub.audit")

WINDOW_SECONDS = 60.0
ACTION = "access.refused"
#: Distinct URL paths kept per entry (a tile storm would otherwise list every tile).
MAX_PATHS = 3

Key = tuple[int, str, str]  # (user id, object type, object id)


@dataclass
class _Refusals:
    case_id: int | None
    ip: str | None
    since: dt.datetime
    until: dt.datetime
    count: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    def add(self, status: int, action: str, path: str, at: dt.datetime) -> None:
        self.count += 1
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if action and action not in self.actions:
            self.actions.append(action)
        if path and path not in self.paths and len(self.paths) < MAX_PATHS:
            self.paths.append(path)
        if at > self.until:
            self.until = at

    def merge(self, old: "_Refusals") -> None:
        self.count += old.count
        for status, n in old.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.actions += [a for a in old.actions if a not in self.actions]
        self.paths += [p for p in old.paths if p not in self.paths][:max(0, MAX_PATHS - len(self.paths))]
        self.since = min(self.since, old.since)
        self.until = max(self.until, old.until)
        self.case_id = self.case_id or old.case_id
        self.ip = old.ip or self.ip


class RefusalAggregator:
    """Thread-safe in-memory count of refusals per (user, object)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.window = dt.timedelta(seconds=window_seconds)
        self.window_seconds = window_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._notes: dict[Key, _Refusals] = {}
        self._last_flush_attempt = monotonic()

    def discard(self) -> int:
        """Drop every pending note (a new application in this process: tests); returns how many."""
        with self._lock:
            n = len(self._notes)
            self._notes.clear()
            self._last_flush_attempt = self._monotonic()
            return n

    def set_window(self, window_seconds: float) -> None:
        with self._lock:
            self.window = dt.timedelta(seconds=window_seconds)
            self.window_seconds = window_seconds

    def pending(self) -> int:
        with self._lock:
            return len(self._notes)

    def note(self, user_id: int, object_type: str, object_id: object, *, case_id: int | None, status: int,
             action: str, path: str = "", ip: str | None = None, at: dt.datetime | None = None) -> None:
        """Count one refused request; O(1), no I/O.  ``at`` is for tests (default: now)."""
        now = at or utcnow()
        key = (user_id, object_type, str(object_id))
        with self._lock:
            notes = self._notes.get(key)
            if notes is None:
                notes = self._notes[key] = _Refusals(case_id, ip, now, now)
            notes.add(status, action, path, now)

    def _take_due(self, now: dt.datetime, force: bool) -> dict[Key, _Refusals]:
        with self._lock:
            due = {k: v for k, v in self._notes.items() if force or now - v.since >= self.window}
            for key in due:
                del self._notes[key]
            return due

    def _put_back(self, notes: dict[Key, _Refusals]) -> None:
        with self._lock:
            for key, old in notes.items():
                cur = self._notes.get(key)
                if cur is None:
                    self._notes[key] = old
                else:
                    cur.merge(old)

    def flush(self, session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
        """Add one ``access.refused`` entry per (user, object) whose window has elapsed (all with
        ``force``) to ``session`` (the caller commits); returns how many."""
        from .audit import record
        due = self._take_due(now or utcnow(), force)
        try:
            for (user_id, object_type, object_id), notes in sorted(due.items(), key=lambda kv: (kv[1].since, kv[0])):
                user = session.get(User, user_id)
                record(session, ACTION, actor=user, actor_name=None if user else f"user#{user_id}",
                       object_type=object_type, object_id=object_id, case_id=notes.case_id, ip=notes.ip,
                       details={"count": notes.count, "statuses": notes.statuses, "actions": notes.actions,
                                "paths": notes.paths, "since": notes.since.isoformat(),
                                "until": notes.until.isoformat()})
        except Exception:
            self._put_back(due)
            raise
        return len(due)

    def maybe_flush(self, now: dt.datetime | None = None, force: bool = False, *, every_call: bool = False,
                    session_factory: Callable | None = None) -> int:
        """Write due entries in a short session of their own, at most once per window (per process)
        unless ``every_call``; never raises (a database hiccup must not turn a 404 into a 500)."""
        tick = self._monotonic()
        with self._lock:
            if not (force or every_call) and tick - self._last_flush_attempt < self.window_seconds:
                return 0
            self._last_flush_attempt = tick
            if not self._notes:
                return 0
        if session_factory is None:
            from ..db import independent_session
            session_factory = independent_session
        due: dict[Key, _Refusals] = {}
        try:
            with session_factory() as session:
                due = self._take_due(now or utcnow(), force)
                if not due:
                    return 0
                helper = RefusalAggregator(self.window_seconds)
                helper._notes = dict(due)
                return helper.flush(session, now=now, force=True)
        except Exception:
            log.exception("could not write refused-access audit entries; keeping them for the next flush")
            self._put_back(due)
            return 0


_default = RefusalAggregator()


def note(user_id: int, object_type: str, object_id: object, *, case_id: int | None, status: int, action: str,
         path: str = "", ip: str | None = None) -> None:
    _default.note(user_id, object_type, object_id, case_id=case_id, status=status, action=action, path=path, ip=ip)


def configure(window_seconds: float) -> None:
    _default.set_window(window_seconds)


def flush(session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
    return _default.flush(session, now=now, force=force)


def maybe_flush(now: dt.datetime | None = None, force: bool = False, *, every_call: bool = False) -> int:
    return _default.maybe_flush(now=now, force=force, every_call=every_call)


def default_aggregator() -> RefusalAggregator:
    return _default
