"""``flask audit verify``: check the audit trail's hash chain and name the first broken link."""

from __future__ import annotations

import sys
import time

import click
from flask.cli import AppGroup

audit_cli = AppGroup("audit", help="Audit trail maintenance.")


@audit_cli.command("verify")
@click.option("--last", type=click.IntRange(min=1), default=None,
              help="check only the newest N entries (trusting the hash of the entry before them)")
def audit_verify(last: int | None) -> None:
    """Walk the hash chain in order; exit 0 when intact, 1 at the first broken link."""
    from .db import session_scope
    from .domain.audit import verify_chain

    started = time.perf_counter()
    with session_scope() as s:
        report = verify_chain(s, last=last)
    elapsed = time.perf_counter() - started
    rate = f", {report.checked / elapsed:,.0f} entries/s" if elapsed > 0 and report.checked else ""
    if report.intact:
        head = (f"; head seq {report.head_seq} entry_hash {report.head_hash}" if report.head_hash
                else "; the trail is empty")
        click.echo(f"audit chain intact: {report.checked} entries checked in {elapsed:.2f} s{rate}{head}")
        sys.exit(0)
    click.echo(f"audit chain BROKEN at entry id {report.broken_id} (seq {report.broken_seq}): {report.reason}")
    click.echo(f"{report.checked} entries checked; entries before id {report.broken_id} are intact")
    sys.exit(1)
