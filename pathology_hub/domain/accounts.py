"""Institutions, users, login, sessions and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import ApiToken, Institution, Role, Tier, User, UserSession, as_utc, utcnow
from . import audit, passwords, subspecialties as vocabulary
from .errors import AuthenticationFailed, Conflict, NotFound, ValidationFailed

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
def create_institution(session: Session, *, code: str, name: str, tier: Tier | str,
                       refers_to: list[str] | None = None, actor: User | None = None) -> Institution:
    if not CODE_RE.match(code or ""):
        raise ValidationFailed("Institution code must be 2–32 letters, digits, '-' or '_'.", code="invalid_code")
    if not (name or "").strip():
        raise ValidationFailed("Institution name is required.", code="name_required")
    try:
        tier = Tier(tier)
    except ValueError:
        raise ValidationFailed(f"Unknown tier {tier!r}; use community, district or university.",
                               code="invalid_tier") from None
    if session.scalar(select(Institution).where(Institution.code == code)):
        raise Conflict(f"An institution with code {code} already exists.", code="institution_exists")
    inst = Institution(code=code, name=name.strip(), tier=tier)
    inst.refers_to = [_referral_target(session, inst, c) for c in (refers_to or [])]
    session.add(inst)
    session.flush()
    audit.record(session, "institution.create", actor=actor, object_type="institution", object_id=inst.id,
                 details={"code": code, "tier": tier.value})
    return inst


def _referral_target(session: Session, source: Institution, code: str) -> Institution:
    target = session.scalar(select(Institution).where(Institution.code == code))
    if target is None:
        raise ValidationFailed(f"Referral target {code} does not exist.", code="unknown_institution")
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
        raise ValidationFailed(f"Unknown role {role!r}.", code="invalid_role") from None
    if role is Role.TECHNICIAN and institution.tier is not Tier.COMMUNITY:
        raise ValidationFailed("Technicians belong to community health centres.", code="invalid_role")
    if role is Role.PATHOLOGIST and institution.tier is Tier.COMMUNITY:
        raise ValidationFailed("Pathologists belong to district or university hospitals.", code="invalid_role")
    stored = vocabulary.validate_codes(subspecialties)
    passwords.check_strength(password)
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict(f"The username {username} is taken.", code="username_taken")
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
    now = now or utcnow()
    locked_until = as_utc(user.locked_until)
    if not locked_until or locked_until <= now:
        return 0
    return max(1, int((locked_until - now).total_seconds() // 60) + 1)


def register_failed_password(user: User, policy: SessionPolicy, now: dt.datetime | None = None) -> bool:
    """Count one wrong password; returns True when this failure locks the account."""
    now = now or utcnow()
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= policy.max_failures:
        user.locked_until = now + policy.lockout
        user.failed_logins = 0
        return True
    return False


# ---------------------------------------------------------------- login
def authenticate(session: Session, username: str, password: str, policy: SessionPolicy,
                 ip: str | None = None, now: dt.datetime | None = None) -> User:
    """Check credentials with lock-out after repeated failures; every outcome is audited."""
    now = now or utcnow()
    user = session.scalar(select(User).where(User.username == (username or "").strip()))
    if user is None:
        passwords.dummy_verify(password or "")
        audit.record(session, "login.failed", actor_name=(username or "")[:64], ip=ip,
                     details={"reason": "unknown_user"})
        raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
    minutes = locked_minutes(user, now)
    if minutes:
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": "locked"})
        raise AuthenticationFailed(f"Too many failed logins; try again in {minutes} minutes.",
                                   code="account_locked", details={"retry_after_minutes": minutes})
    if not passwords.verify_password(user.password_hash, password or ""):
        reason = "locked_now" if register_failed_password(user, policy, now) else "bad_password"
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": reason})
        raise AuthenticationFailed("Wrong username or password.", code="invalid_credentials")
    if not user.active or not user.institution.active:
        audit.record(session, "login.failed", actor=user, ip=ip, details={"reason": "inactive"})
        raise AuthenticationFailed("This account is deactivated.", code="account_inactive")
    user.failed_logins = 0
    user.locked_until = None
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
