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

    from .domain.audit_checkpoints import verify_checkpoints
    from .domain.report_documents import signing_identity

    started = time.perf_counter()
    with session_scope() as s:
        report = verify_chain(s, last=last)
        anchors = verify_checkpoints(s, signing_identity())
    elapsed = time.perf_counter() - started
    rate = f", {report.checked / elapsed:,.0f} entries/s" if elapsed > 0 and report.checked else ""
    if report.intact:
        head = (f"; head seq {report.head_seq} entry_hash {report.head_hash}" if report.head_hash
                else "; the trail is empty")
        click.echo(f"audit chain intact: {report.checked} entries checked in {elapsed:.2f} s{rate}{head}")
    else:
        click.echo(f"audit chain BROKEN at entry id {report.broken_id} (seq {report.broken_seq}): {report.reason}")
        click.echo(f"{report.checked} entries checked; entries before id {report.broken_id} are intact")
    if anchors.ok and anchors.checked:
        click.echo(f"signed checkpoints valid: {anchors.checked} checked; newest at seq {anchors.latest_seq} "
                   f"entry_hash {anchors.latest_hash} ({anchors.latest_at})")
    elif anchors.ok:
        click.echo("no signed checkpoint yet: the chain is not anchored (run `flask audit checkpoint` or the worker)")
    else:
        click.echo(f"signed checkpoints FAILED ({len(anchors.problems)} problem(s) shown):")
        for line in anchors.problems:
            click.echo(f"  - {line}")
    sys.exit(0 if report.intact and anchors.ok else 1)


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain's current head with the deployment signing key (also done by the worker)."""
    from .db import session_scope
    from .domain.audit_checkpoints import ChainBroken, write_checkpoint
    from .domain.report_documents import signing_identity

    try:
        with session_scope() as s:
            cp = write_checkpoint(s, signing_identity())
            seq, entry_hash = (cp.seq, cp.entry_hash) if cp is not None else (None, None)
    except ChainBroken as exc:
        click.echo(f"checkpoint refused: {exc}")
        sys.exit(1)
    if seq is None:
        click.echo("nothing to checkpoint: no entry since the newest checkpoint (or the trail is empty)")
    else:
        click.echo(f"checkpoint written: seq {seq} entry_hash {entry_hash}")
    sys.exit(0)
