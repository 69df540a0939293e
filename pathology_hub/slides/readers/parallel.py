"""A per-process thread pool for work that releases the GIL: tile decoding (imagecodecs,
OpenJPEG, libjpeg-turbo) and colour transforms (LittleCMS through Pillow).

A slide with one or two level-0 blocks is tiled in one process (starting a process pool costs more
than it saves), and a JPEG 2000 tile costs ~7 ms to decode: the real TCGA slide spent 1.8 s
decoding on one core while the other idled. Threads share the block's output array, so each one
writes its own tiles or rows in place. Results never depend on the split: every job is a pure
function of its own input.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_pools: dict[tuple[int, str], ThreadPoolExecutor] = {}
_lock = threading.Lock()
_inline = False


def run_inline() -> None:
    """This process maps on its calling thread from now on: a tiling pool worker, where one
    worker per core already keeps every core busy (threads there measured 5 % slower)."""
    global _inline
    _inline = True


def shared_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """This process's thread pool called ``name`` (its threads are named after it), made on first
    use and kept: starting a thread costs 1-4 ms here. One per process id: a pool inherited through
    fork has no threads behind it."""
    key = (os.getpid(), name)
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _pools[key] = ThreadPoolExecutor(workers, thread_name_prefix=name)
        return pool


def _pool() -> ThreadPoolExecutor:
    return shared_pool("decode", max(1, os.cpu_count() or 1))


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]`` on the pool; inline for fewer than two items or on a pool thread
    (a job that maps again must not wait for threads it is occupying)."""
    items = list(items)
    if _inline or len(items) < 2 or threading.current_thread().name.startswith("decode"):
        return [fn(x) for x in items]
    return list(_pool().map(fn, items))
