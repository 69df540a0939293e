"""Migrations are the only way the schema changes, and they match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from pathology_hub.migrate import downgrade, upgrade
from pathology_hub.models import Base


def test_models_match_migrations(database_url):
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations; add an Alembic revision: {diff}"


def test_upgrade_downgrade_upgrade_on_fresh_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        names = set(engine.dialect.get_table_names(conn))
    engine.dispose()
    assert {"users", "institutions", "cases", "slides", "audit_events", "jobs"} <= names
