"""Bounded retry with exponential back-off for transient backend failures.

Written out (instead of urllib3's Retry inside the HTTP client) so there is
exactly one retry layer whose worst case we can state: by default 4 attempts
with 0.1/0.2/0.4 s pauses, and no new attempt once ``budget`` seconds have
passed, so StorageUnavailable comes after about half a second when the port
refuses connections and after about budget + one connect timeout when the
host does not answer at all.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import StorageUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 1.0
    #: No new attempt starts after this many seconds since the first one.
    budget: float = 3.0

    def delay(self, attempt: int) -> float:
        """Pause after failed ``attempt`` (1-based), with jitter so parallel callers spread out."""
        full = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return full * (0.5 + random.random() / 2)


def retry_call(fn: Callable[[], T], *, policy: RetryPolicy, is_transient: Callable[[BaseException], bool],
               what: str, can_retry: Callable[[], bool] = lambda: True) -> T:
    """Call ``fn`` until it succeeds, a non-transient error occurs, or attempts run out.

    ``can_retry`` lets a caller veto a retry (e.g. a half-consumed, unseekable
    upload stream cannot be replayed); the transient error then becomes
    StorageUnavailable at once.
    """
    last: BaseException | None = None
    started = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except BaseException as exc:  # noqa: BLE001 - classified right below
            if not is_transient(exc):
                raise
            last = exc
            pause = policy.delay(attempt)
            if (attempt == policy.attempts or not can_retry()
                    or time.monotonic() - started + pause > policy.budget):
                break
            time.sleep(pause)
    raise StorageUnavailable(f"{what}: backend unavailable after {attempt} attempt(s): {last}") from last
