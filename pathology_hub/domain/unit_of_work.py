"""The unit of work a web-facing domain function runs in (issue #17: handlers open no sessions).

Domain functions that the web layer calls take no session: they work in the caller's
thread-scoped session (``db.SessionLocal``; one per request, removed by the teardown in
``web/security.py``; one per worker thread elsewhere) and commit what they change before
they return. Objects they return stay attached to that session until the request ends, so
templates may follow relationships (no ``DetachedInstanceError``). The lower-level domain
functions they compose keep taking the session as their first argument (workers, CLI, tests).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.orm import Session

from ..db import SessionLocal


def current() -> Session:
    """The caller's session (the request's, in the web process)."""
    return SessionLocal()


@contextmanager
def transaction() -> Iterator[Session]:
    """Run a change in the caller's session: committed when the block ends, rolled back when it raises
    (a refused or invalid change leaves nothing half-written for the rest of the request)."""
    session = SessionLocal()
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise


def rollback() -> None:
    """Discard what the caller's session holds (after a read that must leave no trace)."""
    SessionLocal.rollback()
