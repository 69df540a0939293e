"""Sampled audit of slide viewing: which user looked at which slide, over which zoom range.

Writing one audit entry per tile would multiply the trail by thousands per
viewing session and put a database write on the tile hot path.  Instead every
tile request is *noted* in memory (a dict update under a lock, no I/O) and the
notes are written as one ``slide.viewed`` entry per (user, slide) and window:
``details = {"levels": [min, max], "tiles": n, "since": ISO, "until": ISO}``
(Deep Zoom levels; ``since``/``until`` are the first and last tile of the window).

Wiring (done by the web layer, not here):

* tile endpoint, after authorisation, on every tile served::

      view_audit.note_tile(user.id, slide.id, slide.case_id, level)
      view_audit.maybe_flush()

  ``maybe_flush()`` returns at once (one lock, one clock read) except at most
  once per window per process, when it opens a short session
  (:func:`pathology_hub.db.session_scope`) and writes the due entries.
* optionally at shutdown: ``view_audit.maybe_flush(force=True)`` so the last
  window is not lost.

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

from sqlalchemy.orm import Session

from ..models import User
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
        self._last_flush_attempt = monotonic()

    # ------------------------------------------------------------ hot path
    def note_tile(self, user_id: int, slide_id: int, case_id: int | None, level: int,
                  at: dt.datetime | None = None) -> None:
        """Count one tile; O(1), no I/O.  ``at`` is for tests (default: now)."""
        now = at or utcnow()
        key = (user_id, slide_id)
        with self._lock:
            view = self._views.get(key)
            if view is None:
                self._views[key] = _View(case_id, level, level, 1, now, now)
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

    # ------------------------------------------------------------ flushing
    def pending(self) -> int:
        with self._lock:
            return len(self._views)

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
                cur = self._views.get(key)
                if cur is None:
                    self._views[key] = old
                    continue
                cur.tiles += old.tiles
                cur.min_level = min(cur.min_level, old.min_level)
                cur.max_level = max(cur.max_level, old.max_level)
                cur.since = min(cur.since, old.since)
                cur.until = max(cur.until, old.until)

    def flush(self, session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
        """Add one ``slide.viewed`` entry per (user, slide) whose window has elapsed (all with ``force``).

        Entries are added to ``session`` (the caller commits); returns how many.
        """
        from .audit import record
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
            if not self._views:
                return 0
        if session_factory is None:
            from ..db import session_scope as session_factory
        due: dict[tuple[int, int], _View] = {}
        try:
            due = self._take_due(now or utcnow(), force)
            if not due:
                return 0
            with session_factory() as session:
                helper = ViewAggregator(self.window_seconds)
                helper._views = dict(due)  # a copy: ``due`` is what we put back on failure
                written = helper.flush(session, now=now, force=True)
            return written
        except Exception:
            log.exception("could not write slide view audit entries; keeping them for the next flush")
            self._put_back(due)
            return 0


_default = ViewAggregator()


def note_tile(user_id: int, slide_id: int, case_id: int | None, level: int) -> None:
    """Record one tile served to ``user_id`` from ``slide_id`` at Deep Zoom ``level`` (in memory)."""
    _default.note_tile(user_id, slide_id, case_id, level)


def flush(session: Session, now: dt.datetime | None = None, force: bool = False) -> int:
    """Add due ``slide.viewed`` entries to ``session`` (caller commits); returns the number added."""
    return _default.flush(session, now=now, force=force)


def maybe_flush(now: dt.datetime | None = None, force: bool = False) -> int:
    """Write due entries in their own short session, at most once per window; never raises."""
    return _default.maybe_flush(now=now, force=force)


def default_aggregator() -> ViewAggregator:
    return _default
