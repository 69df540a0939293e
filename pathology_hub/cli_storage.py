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
    from .models import Slide, StoredOriginal

    with session_scope() as s:
        # An original whose every slide was withdrawn and purged is gone on purpose.
        purged = set(s.scalars(select(Slide.original_id).where(Slide.purged_at.is_not(None))))
        kept = set(s.scalars(select(Slide.original_id).where(Slide.purged_at.is_(None))))
        expected = {o.storage_key: o.sha256 for o in s.scalars(select(StoredOriginal))
                    if o.storage_key.startswith(prefix) and (o.id in kept or o.id not in purged)}
    report = scrub(runtime.store(), prefix, expected=expected)
    click.echo(f"checked {report.checked} objects ({report.bytes_read / 2**20:.1f} MiB): {len(report.ok)} ok, "
               f"{len(report.missing)} missing, {len(report.corrupted)} corrupted, "
               f"{len(report.unverifiable)} without a recorded hash")
    for key in report.missing:
        click.echo(f"MISSING    {key}")
    for bad in report.corrupted:
        click.echo(f"CORRUPTED  {bad.key} (expected {bad.expected[:16]}…, found {bad.actual[:16]}…)")
    sys.exit(0 if report.clean else 1)


@storage_cli.command("purge-withdrawn")
def storage_purge_withdrawn() -> None:
    """Delete the objects of withdrawn slides whose retention period (WITHDRAWN_SLIDE_RETENTION_DAYS) is over."""
    from . import runtime
    from .db import session_scope
    from .domain import slide_facts

    with session_scope() as s:
        purged = slide_facts.purge_withdrawn(s, runtime.store())
    click.echo(f"purged the objects of {len(purged)} withdrawn slide(s)" + (f": {purged}" if purged else ""))
