"""Feeds tile requests into the sampled slide-view audit (``domain/view_audit.py``).

The WSGI tile fast path knows the login session token and the slide uid, not the user
and slide ids, and must not query the database per tile (it answers thousands of tiles
per second in about 25 µs).  So the Flask endpoints that hand out tile URLs and tokens
(slide JSON, viewer page) and the full-policy tile/DZI path, which do know user and
slide, :func:`remember` the mapping in two small in-process dicts; a tile then costs two
dict lookups and one ``note_tile`` under a lock.  A tile whose keys are not in the dicts
(another worker issued the token, the dicts were cleared) is noted by its keys and the
ids are looked up once per flush, not per tile.
"""

from __future__ import annotations

import atexit
import logging

from ..domain import view_audit

log = logging.getLogger("pathology_hub.audit")

_MEMO_SIZE = 10_000  # entries per dict; cleared when full (a miss only costs a lookup at flush time)

# Plain dicts: a single get/set is atomic under the GIL; clearing when full may lose a
# concurrent entry, which merely sends that tile through the flush-time lookup.
_users: dict[str, int] = {}                      # login session token -> user id
_slides: dict[str, tuple[int, int | None]] = {}  # slide uid -> (slide id, case id)


def remember(session_token: str | None, user_id: int | None, slide) -> None:
    """Remember who this session is and which slide this uid is (cheap; called per request)."""
    if session_token and user_id is not None and _users.get(session_token) != user_id:
        if len(_users) >= _MEMO_SIZE:
            _users.clear()
        _users[session_token] = user_id
    if slide is not None and slide.uid not in _slides:
        if len(_slides) >= _MEMO_SIZE:
            _slides.clear()
        _slides[slide.uid] = (slide.id, slide.case_id)


def on_tile(session_token: str, level: int, uid: str) -> None:
    """``TileFastPath.on_tile``: one tile served for a session token; no I/O unless a flush is due."""
    user_id = _users.get(session_token)
    slide = _slides.get(uid)
    if user_id is not None and slide is not None:
        view_audit.note_tile(user_id, slide[0], slide[1], level)
    else:
        view_audit.note_tile_unresolved(session_token, uid, level)
    view_audit.maybe_flush()


def on_tile_known(user_id: int, slide, level: int) -> None:
    """A tile served after the full policy check, where user and slide are loaded already."""
    view_audit.note_tile(user_id, slide.id, slide.case_id, level)
    view_audit.maybe_flush()


def flush_at_exit() -> None:
    """Write whatever is pending when the process ends (gunicorn worker exit, CLI, tests)."""
    try:
        view_audit.maybe_flush(force=True)
    except Exception:  # noqa: BLE001 - maybe_flush already logs; never fail interpreter shutdown
        log.exception("slide view audit: final flush failed")


_registered = False


def install(app) -> None:
    """Configure the window from the settings and flush at shutdown (once per process).

    An application is created once per process in production.  When another one is
    created in the same process (the test suite, one per test, each on a fresh database),
    notes and memos of the previous one are dropped rather than written into the new
    database under ids that mean something else there."""
    global _registered
    view_audit.default_aggregator().discard()
    _users.clear()
    _slides.clear()
    view_audit.configure(float(app.config["SETTINGS"].view_audit_window_seconds))
    if not _registered:
        atexit.register(flush_at_exit)
        _registered = True
