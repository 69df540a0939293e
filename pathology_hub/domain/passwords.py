"""Argon2id password hashing with parameters taken from settings."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import ValidationFailed

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def configure(time_cost: int, memory_kib: int) -> None:
    """Tests lower the cost; production keeps the argon2-cffi defaults or higher."""
    global _hasher, _dummy
    if (_hasher.time_cost, _hasher.memory_cost) != (time_cost, memory_kib) or _dummy is None:
        _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        _dummy = None


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed("Password must be at least %(min)s characters long.",
                               code="weak_password", params={"min": MIN_PASSWORD_LENGTH})


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def dummy_verify(password: str) -> None:
    """Verify against a throw-away hash when the username is unknown, so that the answer takes as
    long as for a real user and timing does not reveal which usernames exist. Argon2 costs what
    the *hash* says, so the dummy is made with the configured parameters, like every real hash."""
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_dummy, password)


_dummy: str | None = None
