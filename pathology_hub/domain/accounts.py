"""Institutions, users, login, sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import inspect, or_, select, update
from sqlalchemy.orm import Session

from ..models import ApiToken, Institution, Role, Tier, User, UserSession, as_utc, utcnow
from . import audit, passwords, subspecialties as vocabulary, timezones, unit_of_work
from .errors import AuthenticationFailed, Conflict, DomainError, NotFound, ValidationFailed

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{2,32}$")


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta
    absolute: dt.timedelta
    max_failures: int
    lockout: dt.timedelta


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- institutions
#: Languages a report PDF can be printed in (catalogue languages).
REPORT_LANGUAGES = ("zh", "en")


def _report_language(value: str | None) -> str:
    language = (value or "zh").strip().lower()
    if language not in REPORT_LANGUAGES:
        raise ValidationFailed("%(field)s must be one of: %(allowed)s.", code="invalid_choice",
                               details={"field": "report_language"}, params={"allowed": ", ".join(REPORT_LANGUAGES)})
    return language


def set_report_language(session: Session, inst: Institution, language: str | None,
                        actor: User | None = None) -> None:
    """The language the reports of this institution's cases are printed in (next signature on)."""
    inst.report_language = _report_language(language)
    audit.record(session, "institution.report_language", actor=actor, object_type="institution", object_id=inst.id,
                 details={"report_language": inst.report_language})


def create_institution(session: Session, *, code: str, name: str, tier: Tier | str,
                       refers_to: list[str] | None = None, actor: User | None = None,
                       time_zone: str | None = None, report_language: str | None = None) -> Institution:
    if not CODE_RE.match(code or ""):
        raise ValidationFailed("Institution code must be 2–32 letters, digits, '-' or '_'.", code="invalid_code")
    if not (name or "").strip():
        raise ValidationFailed("Institution name is required.", code="name_required")
    try:
        tier = Tier(tier)
    except ValueError:
        raise ValidationFailed("Unknown tier %(tier)s; use community, district or university.", params={"tier": tier},
                               code="invalid_tier") from None
    if session.scalar(select(Institution).where(Institution.code == code)):
        raise Conflict("An institution with code %(code)s already exists.", code="institution_exists",
                       params={"code": code})
    inst = Institution(code=code, name=name.strip(), tier=tier, report_language=_report_language(report_language),
                       time_zone=timezones.validate_zone(time_zone))
    inst.refers_to = [_referral_target(session, inst, c) for c in (refers_to or [])]
    session.add(inst)
    session.flush()
    audit.record(session, "institution.create", actor=actor, object_type="institution", object_id=inst.id,
                 details={"code": code, "tier": tier.value})
    return inst


def _referral_target(session: Session, source: Institution, code: str) -> Institution:
    target = session.scalar(select(Institution).where(Institution.code == code))
    if target is None:
        raise ValidationFailed("Referral target %(code)s does not exist.", code="unknown_institution",
                                   params={"code": code})
    if target.tier.rank <= source.tier.rank:
        raise ValidationFailed("An institution can only refer to a higher tier.", code="invalid_referral")
    return target


def set_referrals(session: Session, inst: Institution, codes: list[str], actor: User | None = None) -> None:
    inst.refers_to = [_referral_target(session, inst, c) for c in codes]
    audit.record(session, "institution.referrals", actor=actor, object_type="institution", object_id=inst.id,
                 details={"refers_to": codes})


def set_institution_active(session: Session, inst: Institution, active: bool, actor: User | None = None) -> None:
    inst.active = active
    if not active:
        for user in inst.users:
            _revoke_sessions(session, user)
    audit.record(session, "institution.activate" if active else "institution.deactivate", actor=actor,
                 object_type="institution", object_id=inst.id)


def set_institution_time_zone(session: Session, inst: Institution, name: str, actor: User | None = None) -> None:
    """The zone in which this institution's users read times (validated with zoneinfo)."""
    new = timezones.validate_zone(name)
    if new == inst.time_zone:
        return
    old, inst.time_zone = inst.time_zone, new
    audit.record(session, "institution.time_zone", actor=actor, object_type="institution", object_id=inst.id,
                 details={"from": old, "to": new})


# ---------------------------------------------------------------- users
def create_user(session: Session, *, username: str, full_name: str, password: str, role: Role | str,
                institution: Institution, email: str | None = None, subspecialties: str | list[str] = "",
                actor: User | None = None) -> User:
    if not USERNAME_RE.match(username or ""):
        raise ValidationFailed("Username must be 3–64 letters, digits, '.', '-' or '_'.", code="invalid_username")
    if not (full_name or "").strip():
        raise ValidationFailed("Full name is required.", code="name_required")
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed("Unknown role %(role)s.", code="invalid_role", params={"role": str(role)}) from None
    if role is Role.TECHNICIAN and institution.tier is not Tier.COMMUNITY:
        raise ValidationFailed("Technicians belong to community health centres.", code="invalid_role")
    if role is Role.PATHOLOGIST and institution.tier is Tier.COMMUNITY:
        raise ValidationFailed("Pathologists belong to district or university hospitals.", code="invalid_role")
    stored = vocabulary.validate_codes(subspecialties)
    passwords.check_strength(password)
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict("The username %(username)s is taken.", code="username_taken", params={"username": username})
    user = User(username=username, full_name=full_name.strip(), email=email, role=role,
                institution_id=institution.id, password_hash=passwords.hash_password(password),
                subspecialties=stored)
    session.add(user)
    session.flush()
    audit.record(session, "user.create", actor=actor, object_type="user", object_id=user.id,
                 details={"username": username, "role": role.value, "institution": institution.code})
    return user


def set_subspecialties(session: Session, user: User, codes: str | list[str], actor: User | None = None) -> None:
    """Set a pathologist's subspecialties (codes of the configured list; unknown codes are refused)."""
    stored = vocabulary.validate_codes(codes)
    if user.role is not Role.PATHOLOGIST and stored:
        raise ValidationFailed("Only pathologists have subspecialties.", code="invalid_role")
    before = user.subspecialties
    user.subspecialties = stored
    audit.record(session, "user.subspecialties", actor=actor, object_type="user", object_id=user.id,
                 details={"from": vocabulary.split_stored(before), "to": vocabulary.split_stored(stored)})


def set_user_active(session: Session, user: User, active: bool, actor: User | None = None) -> None:
    """Deactivation ends every session of the user at once (checked on each request)."""
    user.active = active
    if not active:
        _revoke_sessions(session, user)
        session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                        .values(revoked_at=utcnow()))
    audit.record(session, "user.activate" if active else "user.deactivate", actor=actor,
                 object_type="user", object_id=user.id)


def change_password(session: Session, user: User, old: str, new: str, ip: str | None = None) -> None:
    if not passwords.verify_password(user.password_hash, old):
        audit.record(session, "user.password_change_failed", actor=user, object_type="user",
                     object_id=user.id, ip=ip)
        raise AuthenticationFailed("The current password is not correct.", code="wrong_password")
    passwords.check_strength(new)
    user.password_hash = passwords.hash_password(new)
    user.password_changed_at = utcnow()
    # Other sessions end; the current one is kept by the caller re-issuing it.
    _revoke_sessions(session, user, keep=user.session_token)
    audit.record(session, "user.password_change", actor=user, object_type="user", object_id=user.id, ip=ip)


def get_user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


# ---------------------------------------------------------------- lock-out
# One counter for every place that asks for the password again (login, report signing and
# co-signing): otherwise a stolen session could guess the password through the signing
# dialog without ever meeting the login lock-out.
def lockout_policy() -> SessionPolicy:
    """The lock-out settings for callers outside a request (domain services, CLI)."""
    from .. import runtime
    s = runtime.settings()
    return SessionPolicy(idle=dt.timedelta(minutes=s.session_idle_minutes),
                         absolute=dt.timedelta(hours=s.session_max_hours),
                         max_failures=s.login_max_failures, lockout=dt.timedelta(minutes=s.login_lockout_minutes))


def locked_minutes(user: User, now: dt.datetime | None = None) -> int:
    """Whole minutes (rounded up, at least 1) until ``user`` may try a password again; 0 = not locked."""
    return _minutes_until(user.locked_until, now or utcnow())


def _minutes_until(locked_until: dt.datetime | None, now: dt.datetime) -> int:
    locked_until = as_utc(locked_until)
    if not locked_until or locked_until <= now:
        return 0
    return max(1, int((locked_until - now).total_seconds() // 60) + 1)


#: How long an attempt waits for a free slot while other checks of the same account's password
#: are in flight, before it gives up and treats the missing outcomes as failures (fail safe).
RESERVATION_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class PasswordAttempt:
    """One reserved password check: ``ordinal`` is its place in the current run of failures
    (1..max_failures); 0 means the account is locked and the password must not be checked."""
    user_id: int
    ordinal: int
    locked_minutes: int = 0


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc) if value.tzinfo else value


def reserve_password_attempt(session: Session, user: User, policy: SessionPolicy,
                             now: dt.datetime | None = None) -> PasswordAttempt:
    """Count a password check as a failure *before* it runs, atomically, or refuse it.

    This is what bounds guessing whatever the concurrency: a single conditional
    ``UPDATE ... SET failed_logins = failed_logins + 1 ... RETURNING`` takes one of the
    ``max_failures`` slots of the current run (refused while the account is locked) and is
    committed at once, so no lock is held while the hash is computed and parallel requests can
    never read the same count. A right password hands its slot back
    (:func:`settle_password_attempt`); a process that dies mid-check leaves it counted.

    When every slot is taken by checks still running, the attempt waits for one of them to
    finish (a right password frees the slots, a wrong last one locks the account), so parallel
    logins with the right password all get through. A slot never given back (its process was
    killed) is resolved after ``RESERVATION_WAIT_SECONDS`` by locking the account.

    Commits ``session``: call it before the unit of work has changes of its own.
    """
    now = now or utcnow()
    when = _utc(now)
    deadline = time.monotonic() + RESERVATION_WAIT_SECONDS
    not_locked = or_(User.locked_until.is_(None), User.locked_until <= when)
    while True:
        try:
            ordinal = session.execute(
                update(User).where(User.id == user.id, User.failed_logins < policy.max_failures, not_locked)
                .values(failed_logins=User.failed_logins + 1).returning(User.failed_logins)
                .execution_options(synchronize_session=False)).scalar()
            if ordinal is not None:
                return PasswordAttempt(user.id, ordinal)
            minutes = _minutes_until(session.scalar(select(User.locked_until).where(User.id == user.id)), now)
            if minutes:
                return PasswordAttempt(user.id, 0, minutes)
            if time.monotonic() >= deadline:
                session.execute(update(User).where(User.id == user.id, User.failed_logins >= policy.max_failures,
                                                   not_locked)
                                .values(locked_until=when + policy.lockout, failed_logins=0)
                                .execution_options(synchronize_session=False))
                return PasswordAttempt(user.id, 0, max(1, int(policy.lockout.total_seconds() // 60)))
        finally:
            session.commit()  # the slot is taken (or not) for everyone, and no lock is kept
        time.sleep(_POLL_SECONDS * (0.5 + random.random()))


def settle_password_attempt(session: Session, user: User, attempt: PasswordAttempt, correct: bool,
                            policy: SessionPolicy, now: dt.datetime | None = None) -> bool:
    """Record the outcome of a reserved check (committed); True when this failure locked the account.

    Wrong: the slot stays counted; the check that held the last slot locks the account (and a new
    run starts at 0). Right: the run of failures ends (count 0, no lock), as a right password always did.
    """
    now = now or utcnow()
    locked_now = False
    stmt = update(User).where(User.id == attempt.user_id).execution_options(synchronize_session=False)
    if correct:
        session.execute(stmt.values(failed_logins=0, locked_until=None))
    elif attempt.ordinal >= policy.max_failures:
        session.execute(stmt.values(failed_logins=0, locked_until=_utc(now) + policy.lockout))
        locked_now = True
    session.commit()
    if inspect(user).persistent:
        session.expire(user, ["failed_logins", "locked_until"])
    return locked_now


def check_password_limited(session: Session, user: User, password: str, policy: SessionPolicy,
                           now: dt.datetime | None = None) -> tuple[bool, PasswordAttempt, bool]:
    """Reserve, verify, settle: ``(correct, attempt, locked_now)``. ``attempt.ordinal == 0`` means
    the account is locked and the password was not checked. Commits ``session`` (see
    :func:`reserve_password_attempt`); no database connection is held while the hash is computed."""
    attempt = reserve_password_attempt(session, user, policy, now)
    if not attempt.ordinal:
        return False, attempt, False
    correct = False
    try:
        correct = passwords.verify_password(user.password_hash, password)
    finally:
        locked_now = settle_password_attempt(session, user, attempt, correct, policy, now)
    return correct, attempt, locked_now


# ---------------------------------------------------------------- login
def authenticate(session: Session, username: str, password: str, policy: SessionPolicy,
                 ip: str | None = None, now: dt.datetime | None = None) -> User:
    """Check credentials with lock-out after repeated failures; every outcome is audited.

    The failure counter is kept in short transactions of their own (see
    :func:`reserve_password_attempt`), so ``session`` is committed on the way: call this before
    the unit of work has changes of its own."""
    now = now or utcnow()
    user = session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        passwords.dummy_verify(password or "")
        audit.record(session, "login.failed", actor_name=(username or "")[:64], ip=ip,
                     details={"reason": "unknown_user"})
        raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
    correct, attempt, locked_now = check_password_limited(session, user, password or "", policy, now)
    if attempt.locked_minutes:
        minutes = attempt.locked_minutes
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": "locked"})
        raise AuthenticationFailed("Too many failed logins; try again in %(retry_after_minutes)s minutes.",
                                   code="account_locked", details={"retry_after_minutes": minutes})
    if not correct:
        reason = "locked_now" if locked_now else "bad_password"
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": reason})
        raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
    if not user.active or not user.institution.active:
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": "inactive"})
        raise AuthenticationFailed("This account is deactivated.", code="account_inactive")
    user.last_login_at = now
    audit.record(session, "login", actor=user, ip=ip)
    return user


def start_session(session: Session, user: User, ip: str | None = None, user_agent: str | None = None) -> str:
    """A fresh random token per login, so a session id is never reused across logins."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(id=_digest(token), user_id=user.id, ip=ip, user_agent=(user_agent or "")[:300]))
    user.session_token = token
    return token


def resolve_session(session: Session, token: str, policy: SessionPolicy,
                    now: dt.datetime | None = None, touch: bool = True) -> User | None:
    """The user behind a session token, or None when it is unknown, revoked, idle or too old."""
    now = now or utcnow()
    record = session.get(UserSession, _digest(token))
    if record is None or record.revoked_at is not None:
        return None
    user = record.user
    if (not user.active or not user.institution.active
            or now - as_utc(record.last_seen_at) > policy.idle
            or now - as_utc(record.created_at) > policy.absolute):
        record.revoked_at = now
        return None
    # Touch at most once a minute to keep writes off the hot path.
    if touch and now - as_utc(record.last_seen_at) > dt.timedelta(seconds=60):
        record.last_seen_at = now
    user.session_token = token
    return user


def user_id_for_session(session: Session, token: str) -> int | None:
    """Who a session token belongs (or belonged) to, whatever its state: for attributing audit
    notes taken while it was valid (see ``view_audit``), never for authorising anything."""
    return session.scalar(select(UserSession.user_id).where(UserSession.id == _digest(token)))


def end_session(session: Session, token: str, ip: str | None = None) -> None:
    record = session.get(UserSession, _digest(token))
    if record is not None and record.revoked_at is None:
        record.revoked_at = utcnow()
        audit.record(session, "logout", actor=record.user, ip=ip)


def _revoke_sessions(session: Session, user: User, keep: str | None = None) -> None:
    stmt = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep:
        stmt = stmt.where(UserSession.id != _digest(keep))
    session.execute(stmt.values(revoked_at=utcnow()))


# ---------------------------------------------------------------- API tokens
def create_api_token(session: Session, user: User, name: str, days: int | None = 365,
                     actor: User | None = None) -> str:
    token = "phk_" + secrets.token_urlsafe(32)
    expires = utcnow() + dt.timedelta(days=days) if days else None
    session.add(ApiToken(user_id=user.id, name=name[:100], token_hash=_digest(token), expires_at=expires))
    audit.record(session, "api_token.create", actor=actor or user, object_type="user", object_id=user.id,
                 details={"name": name})
    return token


def resolve_api_token(session: Session, token: str, now: dt.datetime | None = None) -> User | None:
    now = now or utcnow()
    record = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token)))
    if record is None or record.revoked_at is not None:
        return None
    if record.expires_at is not None and as_utc(record.expires_at) < now:
        return None
    user = record.user
    if not user.active or not user.institution.active:
        return None
    return user


# ---------------------------------------------------------------- the request's own units of work
# Called by the web's request plumbing (loading the signed-in user) and the login pages, which
# hold no session: each function owns its unit of work (see ``unit_of_work``).
def load_session_user(token: str, policy: SessionPolicy, *, touch: bool = True) -> User | None:
    """The user of a browser session token (None when it no longer stands). The session's
    "last seen" or its revocation is committed at once, before the request does anything."""
    session = unit_of_work.current()
    user = resolve_session(session, token, policy, touch=touch)
    if session.dirty:
        session.commit()
    return user


def load_token_user(token: str) -> User | None:
    """The user of an API (bearer) token, or None."""
    return resolve_api_token(unit_of_work.current(), token)


def log_in(username: str, password: str, policy: SessionPolicy, *, ip: str | None = None,
           user_agent: str | None = None) -> User:
    """Check the credentials and start a server-side session (``user.session_token``).
    A refusal is committed too: the failed-login audit entry and the counters must stay."""
    session = unit_of_work.current()
    try:
        user = authenticate(session, username, password, policy, ip=ip)
    except DomainError:
        session.commit()
        raise
    start_session(session, user, ip=ip, user_agent=user_agent)
    session.commit()
    return user


def log_out(token: str, *, ip: str | None = None) -> None:
    with unit_of_work.transaction() as session:
        end_session(session, token, ip=ip)


def change_own_password(user: User, old: str, new: str, *, ip: str | None = None) -> None:
    """Change the signed-in user's password; a wrong current password is audited and kept."""
    session = unit_of_work.current()
    try:
        change_password(session, session.merge(user), old, new, ip=ip)
    except DomainError:
        session.commit()
        raise
    session.commit()


def remember_locale(user: User, lang: str) -> None:
    """Keep the language a signed-in user chose, so e-mails and the next login use it too."""
    with unit_of_work.transaction() as session:
        session.merge(user).locale = lang
