"""``flask storage verify``: scrub stored objects against their recorded SHA-256."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

storage_cli = AppGroup("storage", help="Object storage maintenance.")


@storage_cli.command("verify")
@click.option("--prefix", default="", help="only objects under this key prefix")
def storage_verify(prefix: str) -> None:
    """Re-read objects, recompute SHA-256 and report missing or corrupted ones (exit 1 if any)."""
    from sqlalchemy import select

    from storage.verify import scrub

    from . import runtime
    from .db import session_scope
    from .models import StoredOriginal

    with session_scope() as s:
        expected = {o.storage_key: o.sha256 for o in s.scalars(select(StoredOriginal))
                    if o.storage_key.startswith(prefix)}
    report = scrub(runtime.store(), prefix, expected=expected)
    click.echo(report.summary())
    for key in report.missing:
        click.echo(f"MISSING   {key}")
    for key in report.corrupted:
        click.echo(f"CORRUPTED {key}")
    sys.exit(1 if (report.missing or report.corrupted) else 0)
