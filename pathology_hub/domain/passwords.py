"""Argon2id password hashing with parameters taken from settings."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import ValidationFailed

_hasher = PasswordHasher()
MIN_PASSWORD_LENGTH = 10


def configure(time_cost: int, memory_kib: int) -> None:
    """Tests lower the cost; production keeps the argon2-cffi defaults or higher."""
    global _hasher
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"Password must be at least {MIN_PASSWORD_LENGTH} characters long.",
                               code="weak_password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A hash to verify against when the username is unknown, so timing does not reveal which users exist.
def dummy_verify(password: str) -> None:
    verify_password(_DUMMY, password)


_DUMMY = PasswordHasher(time_cost=1, memory_cost=8192).hash("not-a-real-password")
