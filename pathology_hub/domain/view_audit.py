"""Sampled audit of slide viewing: which user looked at which slide, over which zoom range.

Writing one audit entry per tile would multiply the trail by thousands per
viewing session and put a database write on the tile hot path.  Instead every
tile request is *noted* in memory (a dict update under a lock, no I/O) and the
notes are written as one ``slide.viewed`` entry per (user, slide) and window:
``details = {"levels": [min, max], "tiles": n, "since": ISO, "until": ISO}``
(Deep Zoom levels; ``since``/``until`` are the first and last tile of the window).

Wiring (done by the web layer, ``web/view_audit_hook.py``, not here):

* tile endpoint, after authorisation, on every tile served::

      view_audit.note_tile(user.id, slide.id, slide.case_id, level)
      view_audit.maybe_flush()

  ``maybe_flush()`` returns at once (one lock, one clock read) except at most
  once per window per process, when it opens a short session
  (:func:`pathology_hub.db.session_scope`) and writes the due entries.
* optionally at shutdown: ``view_audit.maybe_flush(force=True)`` so the last
  window is not lost.

A tile answered by the WSGI fast path knows only the login session token and the
slide uid.  The web layer maps them to ids from a small in-process memo; when it cannot
(memo cleared, another worker issued the token) it calls :func:`note_tile_unresolved`
and the ids are looked up in the database at flush time, once per (session, slide) and
window, never per tile.

Limits, by design: the aggregate lives in the process, so with several worker
processes one viewing session may yield one entry per process and window, and
notes not yet flushed are lost if the process is killed.  A failed write puts
the notes back so they are retried at the next flush.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Slide, User
from ..models.base import utcnow

log = logging.getLogger("pathology_hub.audit")

WINDOW_SECONDS = 60.0


@dataclass
class _View:
    case_id: int | None
    min_level: int
    max_level: int
    tiles: int
    since: dt.datetime
    until: dt.datetime


class ViewAggregator:
    """Thread-safe in-memory accumulator of tile views per (user, slide)."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.window = dt.timedelta(seconds=window_seconds)
        self.window_seconds = window_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._views: dict[tuple[int, int], _View] = {}
        # (login session token, slide uid) -> notes whose ids are looked up at flush time
        self._unresolved: dict[tuple[str, str], _View] = {}
        self._last_flush_attempt = monotonic()

    def discard(self) -> int:
        """Drop every pending note (a new application in this process: tests); returns how many."""
        with self._lock:
            n = len(self._views) + len(self._unresolved)
            self._views.clear()
            self._unresolved.clear()
            self._last_flush_attempt = self._monotonic()
            return n

    def set_window(self, window_seconds: float) -> None:
        """Change the window (settings, tests); notes already taken keep their ``since``."""
        with self._lock:
            self.window = dt.timedelta(seconds=window_seconds)
            self.window_seconds = window_seconds

    # ------------------------------------------------------------ hot path
    def note_tile(self, user_id: int, slide_id: int, case_id: int | None, level: int,
                  at: dt.datetime | None = None) -> None:
        """Count one tile; O(1), no I/O.  ``at`` is for tests (default: now)."""
        now = at or utcnow()
        with self._lock:
            _add(self._views, (user_id, slide_id), case_id, level, now)

    def note_tile_unresolved(self, session_token: str, slide_uid: str, level: int,
                             at: dt.datetime | None = None) -> None:
        """Count one tile known only by login session token and slide uid; O(1), no I/O.

        The ids are looked up when the notes are flushed (see :meth:`_resolve`)."""
        now = at or utcnow()
        with self._lock:
            _add(self._unresolved, (session_token, slide_uid), None, level, now)

    # ------------------------------------------------------------ flushing
    def pending(self) -> int:
        with self._lock:
            return len(self._views) + len(self._unresolved)

    def _resolve(self, session: Session) -> None:
        """Turn notes keyed by (session token, slide uid) into (user id, slide id) notes.

        Two small queries per distinct key, at flush time only.  A key that names no session
        or no slide any more cannot be attributed and is dropped (logged without the token)."""
        from .accounts import user_id_for_session
        with self._lock:
            pending, self._unresolved = self._unresolved, {}
        if not pending:
            return
        resolved: dict[tuple[int, int], _View] = {}
        try:
            for (token, uid), view in pending.items():
                user_id = user_id_for_session(session, token)
                row = session.execute(select(Slide.id, Slide.case_id).where(Slide.uid == uid)).first()
                if user_id is None or row is None:
                    log.warning("slide view notes dropped: unknown %s",
                                "session" if user_id is None else "slide", extra={"tiles": view.tiles})
                    continue
                view.case_id = row.case_id
                _merge(resolved, (user_id, row.id), view)
        except Exception:
            with self._lock:  # keep them for the next flush
                for key, view in pending.items():
                    _merge(self._unresolved, key, view)
            raise
        self._put_back(resolved)

    def _take_due(self, now: dt.datetime, force: bool) -> dict[tuple[int, int], _View]:
        with self._lock:
            due = {k: v for k, v in self._views.items() if force or now - v.since >= self.window}
            for key in due:
                del self._views[key]
            return due

    def _put_back(self, views: dict[tuple[int, int], _View]) -> None:
        """Merge notes whose write failed back in, so they are retried rather than lost."""
        with self._lock:
            for key, old in views.items():
                _merge(self._views, key, old)

    def flush(self, session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
        """Add one ``slide.viewed`` entry per (user, slide) whose window has elapsed (all with ``force``).

        Entries are added to ``session`` (the caller commits); returns how many.
        """
        from .audit import record
        self._resolve(session)
        due = self._take_due(now or utcnow(), force)
        if not due:
            return 0
        try:
            for (user_id, slide_id), view in sorted(due.items(), key=lambda kv: (kv[1].since, kv[0])):
                user = session.get(User, user_id)
                record(session, "slide.viewed", actor=user, actor_name=None if user else f"user#{user_id}",
                       object_type="slide", object_id=slide_id, case_id=view.case_id,
                       details={"levels": [view.min_level, view.max_level], "tiles": view.tiles,
                                "since": view.since.isoformat(), "until": view.until.isoformat()})
        except Exception:
            self._put_back(due)
            raise
        return len(due)

    def maybe_flush(self, now: dt.datetime | None = None, force: bool = False,
                    session_factory: Callable | None = None) -> int:
        """At most once per window (per process), write due entries in a short session of their own.

        Cheap when nothing is due.  Errors are logged, not raised: a database
        hiccup must not fail the tile request; the notes are kept for the next try.
        """
        tick = self._monotonic()
        with self._lock:
            if not force and tick - self._last_flush_attempt < self.window_seconds:
                return 0
            self._last_flush_attempt = tick
            if not self._views and not self._unresolved:
                return 0
        if session_factory is None:
            from ..db import independent_session
            session_factory = independent_session
        due: dict[tuple[int, int], _View] = {}
        try:
            with session_factory() as session:
                self._resolve(session)
                due = self._take_due(now or utcnow(), force)
                if not due:
                    return 0
                helper = ViewAggregator(self.window_seconds)
                helper._views = dict(due)  # a copy: ``due`` is what we put back on failure
                written = helper.flush(session, now=now, force=True)
            return written
        except Exception:
            log.exception("could not write slide view audit entries; keeping them for the next flush")
            self._put_back(due)
            return 0


def _add(views: dict, key: tuple, case_id: int | None, level: int, now: dt.datetime) -> None:
    """Count one tile into ``views[key]`` (caller holds the lock)."""
    view = views.get(key)
    if view is None:
        views[key] = _View(case_id, level, level, 1, now, now)
        return
    view.tiles += 1
    if level < view.min_level:
        view.min_level = level
    elif level > view.max_level:
        view.max_level = level
    if now > view.until:
        view.until = now
    if case_id is not None:
        view.case_id = case_id


def _merge(views: dict, key: tuple, old: _View) -> None:
    """Fold the notes ``old`` into ``views[key]`` (caller holds the lock, or owns ``views``)."""
    cur = views.get(key)
    if cur is None:
        views[key] = old
        return
    cur.tiles += old.tiles
    cur.min_level = min(cur.min_level, old.min_level)
    cur.max_level = max(cur.max_level, old.max_level)
    cur.since = min(cur.since, old.since)
    cur.until = max(cur.until, old.until)
    if cur.case_id is None:
        cur.case_id = old.case_id


_default = ViewAggregator()


def note_tile(user_id: int, slide_id: int, case_id: int | None, level: int) -> None:
    """Record one tile served to ``user_id`` from ``slide_id`` at Deep Zoom ``level`` (in memory)."""
    _default.note_tile(user_id, slide_id, case_id, level)


def note_tile_unresolved(session_token: str, slide_uid: str, level: int) -> None:
    """Record one tile known only by login session token and slide uid (ids resolved at flush)."""
    _default.note_tile_unresolved(session_token, slide_uid, level)


def configure(window_seconds: float) -> None:
    """Set the window of the process-wide aggregator (``VIEW_AUDIT_WINDOW_SECONDS``)."""
    _default.set_window(window_seconds)


def flush(session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
    """Add due ``slide.viewed`` entries to ``session`` (caller commits); returns the number added."""
    return _default.flush(session, now=now, force=force)


def maybe_flush(now: dt.datetime | None = None, force: bool = False) -> int:
    """Write due entries in their own short session, at most once per window; never raises."""
    return _default.maybe_flush(now=now, force=force)


def default_aggregator() -> ViewAggregator:
    return _default
