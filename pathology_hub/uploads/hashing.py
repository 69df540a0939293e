"""Hashing of upload bodies, kept out of the tus protocol: the whole-file SHA-256 per upload kept
per process, hashing on helper threads while the next block is received, and re-reading from
disk the bytes another process wrote.

hashlib state cannot be shared between processes, so each gunicorn worker keeps the hashers of
the uploads it has seen (:data:`HASHES`); a gap written by another worker is re-hashed from the
staged file (:func:`hash_file_range`).  The protocol (:mod:`.tus`) only asks for a hasher at an
offset and hands it back.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_BLOCK = 4 << 20  # read unit when re-hashing a staged file from disk

HASH_THREADS = ThreadPoolExecutor(8, thread_name_prefix="tus-hash")


class BackgroundHashing:
    """Feeds each received block to the hashers on helper threads (hashlib releases the GIL for
    large updates), so hashing overlaps with receiving and writing the next block, and the
    whole-file SHA-256 and the chunk checksum run side by side.

    At most one block is in flight: :meth:`update` first waits for the previous one, so the
    caller may refill that block's buffer once the next ``update`` returned; :meth:`wait`
    before reading a hasher's state.
    """

    def __init__(self, *hashers: Any) -> None:
        self._hashers = [h for h in hashers if h is not None]
        self._pending: list[Future] = []
        self.blocks = 0

    def update(self, block: Any) -> None:
        self.wait()
        self._pending = [HASH_THREADS.submit(h.update, block) for h in self._hashers]
        self.blocks += 1

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for fut in pending:
            fut.result()

    def __enter__(self) -> "BackgroundHashing":
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()  # never leave a thread reading a buffer that is about to be reused or freed


class HashCache:
    """hashlib objects of uploads this process has been hashing, with the offset they reached.

    Process-wide (not per server) because adapters may build a TusServer per
    request. Bounded LRU: a lost entry only means re-reading bytes from disk.
    """

    def __init__(self, capacity: int = 256) -> None:
        self._items: OrderedDict[tuple[str, str], tuple[int, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def take(self, key: tuple[str, str]) -> tuple[int, Any] | None:
        with self._lock:
            return self._items.pop(key, None)

    def put(self, key: tuple[str, str], offset: int, hasher: Any) -> None:
        with self._lock:
            self._items[key] = (offset, hasher)
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)


HASHES = HashCache()


def hash_file_range(hasher: Any, path: Any, start: int, end: int) -> None:
    with open(path, "rb", buffering=0) as fh:
        fh.seek(start)
        remaining = end - start
        buf = bytearray(_BLOCK)
        view = memoryview(buf)
        while remaining > 0:
            n = fh.readinto(view[: min(_BLOCK, remaining)])
            if not n:
                raise OSError(f"{path} is shorter than its committed offset {end}")
            hasher.update(view[:n])
            remaining -= n
