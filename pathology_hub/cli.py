"""``flask`` sub-commands for operators: migrations, users, institutions, demo data, worker, storage."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from . import runtime
from .db import session_scope
from .domain import accounts
from .domain.errors import DomainError
from .models import Institution, User


def _settings():
    return current_app.config["SETTINGS"]


def _fail(exc: DomainError) -> None:
    click.echo(f"error: {exc.message} ({exc.code})", err=True)
    sys.exit(2)


db_cli = AppGroup("db", help="Database migrations.")


@db_cli.command("upgrade")
@click.option("--revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from .migrate import upgrade
    upgrade(_settings().database_url, revision)
    click.echo("database is at " + revision)


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    from .migrate import downgrade
    downgrade(_settings().database_url, revision)


users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("create")
@click.option("--username", required=True)
@click.option("--full-name", required=True)
@click.option("--role", required=True, type=click.Choice(["technician", "pathologist", "clinician", "admin"]))
@click.option("--institution", "institution_code", required=True, help="institution code")
@click.option("--email", default=None)
@click.option("--subspecialties", default="")
@click.password_option(help="prompted when omitted; never echoed or logged")
def users_create(username, full_name, role, institution_code, email, subspecialties, password) -> None:
    try:
        with session_scope() as s:
            inst = s.scalar(select(Institution).where(Institution.code == institution_code))
            if inst is None:
                raise DomainError(f"No institution with code {institution_code}.", code="unknown_institution")
            user = accounts.create_user(s, username=username, full_name=full_name, password=password, role=role,
                                        institution=inst, email=email, subspecialties=subspecialties)
            click.echo(f"created user {user.username} ({role} at {inst.code})")
    except DomainError as exc:
        _fail(exc)


def _user(s, username: str) -> User:
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        raise DomainError(f"No user {username}.", code="unknown_user")
    return user


@users_cli.command("deactivate")
@click.argument("username")
def users_deactivate(username: str) -> None:
    try:
        with session_scope() as s:
            accounts.set_user_active(s, _user(s, username), False)
        click.echo(f"deactivated {username}; their sessions and tokens are ended")
    except DomainError as exc:
        _fail(exc)


@users_cli.command("activate")
@click.argument("username")
def users_activate(username: str) -> None:
    try:
        with session_scope() as s:
            accounts.set_user_active(s, _user(s, username), True)
        click.echo(f"activated {username}")
    except DomainError as exc:
        _fail(exc)


@users_cli.command("token")
@click.argument("username")
@click.option("--name", default="cli", help="what the token is for, e.g. the scanner workstation")
@click.option("--days", default=365, type=int)
def users_token(username: str, name: str, days: int) -> None:
    """Create an API token (shown once) for scanner workstations and scripts."""
    try:
        with session_scope() as s:
            token = accounts.create_api_token(s, _user(s, username), name, days=days)
        click.echo(token)
    except DomainError as exc:
        _fail(exc)


@users_cli.command("list")
def users_list() -> None:
    with session_scope() as s:
        for u in s.scalars(select(User).order_by(User.username)):
            click.echo(f"{u.username:16} {u.role.value:12} {u.institution.code:8} {'active' if u.active else 'inactive'}")


inst_cli = AppGroup("institutions", help="Manage institutions of the consortium.")


@inst_cli.command("create")
@click.option("--code", required=True)
@click.option("--name", required=True)
@click.option("--tier", required=True, type=click.Choice(["community", "district", "university"]))
@click.option("--refers-to", multiple=True, help="code of a higher-tier institution (repeatable)")
def inst_create(code: str, name: str, tier: str, refers_to: tuple[str, ...]) -> None:
    try:
        with session_scope() as s:
            accounts.create_institution(s, code=code, name=name, tier=tier, refers_to=list(refers_to))
        click.echo(f"created institution {code}")
    except DomainError as exc:
        _fail(exc)


@inst_cli.command("deactivate")
@click.argument("code")
def inst_deactivate(code: str) -> None:
    with session_scope() as s:
        inst = s.scalar(select(Institution).where(Institution.code == code))
        if inst is None:
            _fail(DomainError(f"No institution {code}.", code="unknown_institution"))
        accounts.set_institution_active(s, inst, False)
    click.echo(f"deactivated {code}")


@inst_cli.command("list")
def inst_list() -> None:
    with session_scope() as s:
        for i in s.scalars(select(Institution).order_by(Institution.code)):
            click.echo(f"{i.code:8} {i.tier.value:10} {i.name}  -> {', '.join(t.code for t in i.refers_to) or '-'}")


@click.command("demo")
@click.option("--no-slides", is_flag=True, help="skip generating and tiling the demo slides")
@with_appcontext
def demo_command(no_slides: bool) -> None:
    """Create demo institutions, users, cases and slides (idempotent)."""
    from .demo import DEMO_PASSWORD, ensure_demo_consultations, ensure_demo_data, ensure_demo_slides
    with session_scope() as s:
        logins = ensure_demo_data(s)
    with session_scope() as s:
        ensure_demo_consultations(s)
    if not no_slides:
        with session_scope() as s:
            ensure_demo_slides(s, runtime.store(), _settings().instance_path / "demo", echo=click.echo)
    base = _settings().base_url
    click.echo(f"\nPathology Hub is at {base}/")
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for username, role, inst in logins:
        click.echo(f"  {username:12} {role:12} {inst}")


@click.command("worker")
@with_appcontext
@click.option("--workers", default=2, type=int, help="jobs run at the same time")
def worker_command(workers: int) -> None:
    """Run the background job consumer (Huey) for this QUEUE_URL.

    Worker *threads*, not processes: Huey's worker processes are daemonic and may not
    start children, but a tiling job runs its own process pool over all cores and
    inspection runs each file in a sandboxed child process, so the heavy work leaves
    the GIL anyway.
    """
    from huey.consumer import Consumer

    from . import bootstrap, tasks  # noqa: F401 - tasks: binds the tasks to the queue
    from .queue import huey
    bootstrap.ensure_wired()
    Consumer(huey, workers=workers, worker_type="thread", periodic=True, check_worker_health=True).run()


@click.command("upload")
@with_appcontext
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--case", "case_number", help="case number at your centre")
@click.option("--watch", "watch_dir", type=click.Path(exists=True, file_okay=False), help="folder the scanner writes to")
@click.option("--case-from-filename", "pattern", default=r"^(?P<case>[^_ ]+)[_ ]",
              help="regex whose group 'case' (or first group) is the case number")
@click.option("--server", envvar="PATHOLOGY_HUB_URL", default=None, help="default: BASE_URL")
@click.option("--token", envvar="PATHOLOGY_HUB_TOKEN", default="", help="API token (flask users token NAME)")
@click.option("--stain", default="H&E")
@click.option("--chunk-size", default=None, type=click.IntRange(min=1),
              help="MiB per request (default 32). A dropped connection resends the whole chunk: "
                   "on slow or unreliable links use 4-8.")
@click.option("--settle", default=10.0, type=float, help="seconds a file must stop growing before upload")
@click.option("--once", is_flag=True, help="with --watch: upload what is there now and exit")
@click.option("--wait", "wait_seconds", default=600.0, type=click.FloatRange(min=0), show_default=True,
              help="seconds to wait for the server's inspection verdict on each file")
@click.option("--no-wait", is_flag=True, help="do not wait for the verdict (exit 0 once the bytes are sent)")
@click.option("--allow-duplicate", is_flag=True,
              help="attach a file even if it is already a slide of the case (otherwise it is skipped with a warning)")
@click.option("--no-preview", is_flag=True,
              help="do not send the slide's coarse levels first (by default the slide opens at low magnification "
                   "within seconds, before the whole file has arrived)")
def upload_command(files, case_number, watch_dir, pattern, server, token, stain, chunk_size, settle, once,
                   wait_seconds, no_wait, allow_duplicate, no_preview) -> None:
    """Upload slides with resumable tus uploads (from a scanner workstation).

    flask upload --case C-2026-17 slide1.svs slide2.ndpi
    flask upload --watch /scans --case-from-filename '^(?P<case>C-\\d+-\\d+)_'

    After the last byte the server inspects each file; the command waits for that verdict
    and prints it (a rejected file with the server's error code and message).  Exit status:
    0 every file accepted, 1 a file was rejected, was already a slide of the case (not sent; see
    --allow-duplicate) or its verdict did not come within --wait, 2 a file could not be uploaded
    (or bad usage, token, server).  --watch keeps going after
    a rejection and logs it.
    """
    from pathlib import Path

    from .upload_client import DEFAULT_CHUNK, DuplicateSlide, HubUploader, UploadError, describe, watch
    state = Path(_settings().instance_path) / "upload-client-state.json"
    wait = None if no_wait else wait_seconds
    try:
        uploader = HubUploader(server or _settings().base_url, token, state,
                               chunk_size=chunk_size << 20 if chunk_size else DEFAULT_CHUNK, preview=not no_preview)
        if watch_dir:
            watch(uploader, Path(watch_dir), pattern, settle=settle, once=once, stain=stain, echo=click.echo,
                  wait=wait)
            return
        if not case_number or not files:
            raise UploadError("Give --case and at least one FILE, or --watch DIR.")
        uploader.case_id(case_number)  # token, server and case: fail once, before any file
    except UploadError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    counts = {"accepted": 0, "rejected": 0, "pending": 0, "sent": 0, "duplicate": 0, "failed": 0}
    for path in files:
        try:
            result = uploader.upload(Path(path), case_number, stain=stain, allow_duplicate=allow_duplicate)
            verdict = uploader.verdict(result.url, timeout=wait) if wait is not None else None
        except DuplicateSlide as exc:
            click.echo(f"warning: {exc}", err=True)
            counts["duplicate"] += 1
            continue
        except UploadError as exc:
            click.echo(f"error: {exc}", err=True)
            counts["failed"] += 1
            continue
        click.echo(describe(Path(path), case_number, result, verdict), err=bool(verdict and verdict.refused))
        kind = "sent" if verdict is None else "accepted" if verdict.accepted else \
            "rejected" if verdict.refused else "pending"
        counts[kind] += 1
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    click.echo(f"{len(files)} file(s): {summary}")
    if counts["failed"]:
        sys.exit(2)
    if counts["rejected"] or counts["pending"] or counts["duplicate"]:
        sys.exit(1)


def register_cli(app: Flask) -> None:
    for group in (db_cli, users_cli, inst_cli, demo_command, worker_command, upload_command):
        app.cli.add_command(group)
    from .cli_storage import storage_cli
    app.cli.add_command(storage_cli)
    from .cli_audit import audit_cli
    app.cli.add_command(audit_cli)
