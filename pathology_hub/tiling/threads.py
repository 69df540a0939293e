"""The tasks of one build on a thread pool the process keeps between builds.

Starting a thread costs 1-4 ms on the 2-core machine here. A build that started its eight upload
threads and its render-ahead thread anew spent 10-20 ms on that: most of a five-tile slide's
build, and paid again for every slide a long-lived job worker tiles. The pools are the process's
(:func:`~pathology_hub.slides.readers.parallel.shared_pool`); a :class:`TaskGroup` waits for or
cancels one build's tasks without shutting the shared pool down.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable

from pathology_hub.slides.readers.parallel import shared_pool

__all__ = ["TaskGroup", "shared_pool"]


class TaskGroup:
    """The tasks one build put on a shared pool."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool
        self._futures: set[Future] = set()
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        fut = self.pool.submit(fn, *args, **kwargs)
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._forget)
        return fut

    def _forget(self, fut: Future) -> None:
        with self._lock:
            self._futures.discard(fut)

    def _pending(self) -> list[Future]:
        with self._lock:
            return list(self._futures)

    def wait(self) -> None:
        """Until every task has finished (their errors stay with their futures, for their owners)."""
        wait(self._pending())

    def cancel(self) -> None:
        """Drop the tasks not started yet and wait for the running ones: after a failed build,
        nothing of it is still writing when the build returns."""
        pending = self._pending()
        for fut in pending:
            fut.cancel()
        wait(pending)
