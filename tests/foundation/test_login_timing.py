"""An unknown username costs as much to refuse as a wrong password for a real one, so response
times do not reveal which usernames exist (the dummy hash is made with the configured Argon2 cost)."""

from __future__ import annotations

import datetime as dt
import statistics
import time

import pytest
from sqlalchemy import select

from pathology_hub.domain import accounts, passwords
from pathology_hub.domain.errors import AuthenticationFailed
from pathology_hub.models import User

POLICY = accounts.SessionPolicy(idle=dt.timedelta(minutes=30), absolute=dt.timedelta(hours=12),
                                max_failures=10_000, lockout=dt.timedelta(minutes=15))


@pytest.fixture
def costly_hashes():
    """A production-like cost (the test settings use the cheapest one), restored afterwards."""
    passwords.configure(2, 32768)
    yield
    passwords.configure(1, 8192)


def _refusal_time(db, username: str) -> float:
    start = time.perf_counter()
    with pytest.raises(AuthenticationFailed):
        accounts.authenticate(db, username, "wrong-password-1234", POLICY)
    elapsed = time.perf_counter() - start
    db.rollback()
    return elapsed


@pytest.mark.slow
def test_unknown_and_known_usernames_take_as_long_to_refuse(world, costly_hashes):
    user = world.scalar(select(User).where(User.username == "pathologist"))
    user.password_hash = passwords.hash_password("demo-pass-2026")  # made with the configured cost
    world.commit()
    _refusal_time(world, "nobody-here")  # first use makes the dummy hash
    known, unknown = [], []
    for _ in range(9):
        known.append(_refusal_time(world, "pathologist"))
        unknown.append(_refusal_time(world, "nobody-here"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.6 < ratio < 1.6, f"unknown {statistics.median(unknown) * 1000:.1f} ms, " \
                              f"known {statistics.median(known) * 1000:.1f} ms"
