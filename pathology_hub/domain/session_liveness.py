"""Is a login session still valid? Asked on every tile and DZI request that a tile token authorises.

Tile tokens (``tile_access``) are checked without the database, which is what makes tiles
cheap; but a token outlives a logout or a deactivation by up to its TTL. So the tile paths
also ask here whether the session behind the token still stands. The database is the truth
(every web process sees a logout made in another one); each process remembers an answer for
at most ``RECHECK_SECONDS``, so ending a session stops its tiles everywhere within that time
while a viewer reading hundreds of tiles a second costs one indexed query per second.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from ..models import Institution, User, UserSession, as_utc, utcnow
from .accounts import _digest

#: Longest time a process keeps serving tiles to a session that has been ended elsewhere.
RECHECK_SECONDS = 1.0
_MEMO_SIZE = 10_000


def session_is_live(conn, token: str, max_age: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Not revoked, its user and institution active, younger than ``max_age`` (read only).

    Idle expiry is left to the login layer: tile requests do not count as activity here, and a
    token's own short TTL sends the viewer back through the full check, which keeps it alive."""
    row = conn.execute(
        select(UserSession.revoked_at, UserSession.created_at, User.active, Institution.active)
        .join(User, User.id == UserSession.user_id).join(Institution, Institution.id == User.institution_id)
        .where(UserSession.id == _digest(token))).first()
    if row is None:
        return False
    revoked_at, created_at, user_active, institution_active = row
    return (revoked_at is None and bool(user_active) and bool(institution_active)
            and (now or utcnow()) - as_utc(created_at) <= max_age)


class LivenessCache:
    """Per-process memo of :func:`session_is_live`, each answer trusted ``recheck`` seconds."""

    def __init__(self, engine: Callable[[], Engine], max_age: Callable[[], dt.timedelta],
                 recheck: float = RECHECK_SECONDS) -> None:
        self._engine = engine
        self._max_age = max_age
        self.recheck = recheck
        self._memo: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def is_live(self, token: str) -> bool:
        now = time.monotonic()
        known = self._memo.get(token)
        if known is not None and known[1] > now:
            return known[0]
        with self._engine().connect() as conn:
            live = session_is_live(conn, token, self._max_age())
        with self._lock:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[token] = (live, now + self.recheck)
        return live

    def forget(self, token: str) -> None:
        """This process ended the session: stop at once here (others within ``recheck``)."""
        self._memo.pop(token, None)
