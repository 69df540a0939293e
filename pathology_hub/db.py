"""Database engine and session factory, independent of Flask.

Domain services and the background worker use the same session factory, so
the worker needs no application context to touch the database.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

_engine: Engine | None = None
SessionLocal = scoped_session(sessionmaker(expire_on_commit=False))


def init_engine(database_url: str) -> Engine:
    """Create (or replace) the process-wide engine; idempotent for the same URL."""
    global _engine
    if _engine is not None and str(_engine.url) == database_url:
        return _engine
    if _engine is not None:
        SessionLocal.remove()
        _engine.dispose()
    kwargs: dict = {"pool_pre_ping": True, "future": True}
    if database_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(database_url, **kwargs)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
            # WAL lets the web process read while the worker writes; FKs are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    SessionLocal.configure(bind=engine)
    _engine = engine
    return engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("database engine not initialised; call init_engine() first")
    return _engine


@contextmanager
def committing(session: Session) -> Iterator[Session]:
    """Commit what the block did on ``session``, or roll all of it back when it raises (and re-raise).
    The one commit-or-rollback rule behind every unit of work; who opens and closes the session differs."""
    try:
        yield session
        session.commit()
    except Exception:
        session.rollback()
        raise


@contextmanager
def independent_session() -> Iterator[Session]:
    """A unit of work on a session of its own, never the request's scoped one: work done on the
    side of a request (or in a task) must neither commit nor discard the caller's unit of work."""
    session = SessionLocal.session_factory()
    try:
        with committing(session):
            yield session
    finally:
        session.close()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work for code outside a request (worker, CLI)."""
    try:
        with committing(SessionLocal()) as session:
            yield session
    finally:
        SessionLocal.remove()
