"""Readiness of the database, for the probes in ``web/health.py``."""

from __future__ import annotations

from sqlalchemy import text

from . import unit_of_work


def check_database() -> None:
    """One round trip to the database; raises whatever the driver raises when it is away."""
    unit_of_work.current().execute(text("SELECT 1"))
