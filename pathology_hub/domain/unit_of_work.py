"""The unit of work the domain's web-facing functions run in.

A web handler never holds a database session: it calls one domain function, and that function
owns its unit of work. Inside a request the unit of work is the request's scoped session (so
the signed-in user and every object a handler received stay attached until the request ends,
and nothing is detached behind its back); in a task or a CLI command it is the thread's. The
application ends it at teardown (:func:`finish`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from sqlalchemy.orm import Session

from ..db import SessionLocal, committing

T = TypeVar("T")


def current() -> Session:
    """The session of the current unit of work (the request's or the thread's)."""
    return SessionLocal()


@contextmanager
def transaction() -> Iterator[Session]:
    """Commit what the block did, or roll all of it back when it raises (and re-raise)."""
    with committing(SessionLocal()) as session:
        yield session


def discard() -> None:
    """Roll back whatever the current unit of work holds (an error handler after a refusal)."""
    SessionLocal.rollback()


def get(model: type[T], ident: Any) -> T | None:
    """One row by primary key in the current unit of work, or None."""
    return SessionLocal().get(model, ident) if ident is not None else None


def finish() -> None:
    """End the current unit of work (the end of a request): the session is closed, whatever it
    still holds is discarded, and the next request starts a fresh one."""
    SessionLocal.remove()
