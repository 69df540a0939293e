"""Hashing files on the workstation: the whole-file SHA-256 and per-chunk digests in one read.

Kept apart from the transport because the API checks for duplicates with the same hash
before anything is sent.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_HASH_BLOCK = 8 << 20


def sha256_of(path: Path) -> str:
    """Whole-file SHA-256 (hex)."""
    return hash_file(path)[0]


def hash_file(path: Path, chunk_size: int | None = None, chunk_algorithm: str | None = None
              ) -> tuple[str, dict[int, tuple[int, bytes]]]:
    """One read of the file: its SHA-256 and, if asked, the digest of every ``chunk_size`` chunk.

    The chunk digests are computed on a second thread (hashlib releases the
    GIL), so they cost no extra time on a multi-core machine and leave the
    upload itself with nothing to hash. Using them as ``Upload-Checksum`` also
    means each chunk the server accepts is byte for byte what went into the
    declared SHA-256. Returns (hex SHA-256, {offset: (length, digest)}).
    """
    whole = hashlib.sha256()
    chunks: dict[int, tuple[int, bytes]] = {}
    per_chunk = chunk_size and chunk_algorithm
    state: list[Any] = [None, 0]  # hasher of the current chunk, its start offset

    def chunk_digests(view: memoryview, position: int) -> None:
        done = 0
        while done < len(view):
            boundary = (position // chunk_size + 1) * chunk_size  # type: ignore[operator]
            take = min(len(view) - done, boundary - position)
            if state[0] is None:
                state[0], state[1] = hashlib.new(chunk_algorithm), position  # type: ignore[arg-type]
            state[0].update(view[done:done + take])
            done += take
            position += take
            if position == boundary:
                chunks[state[1]] = (position - state[1], state[0].digest())
                state[0] = None

    # two buffers: block k+1 is read while block k is hashed (SHA-256 here, chunk digests on the pool)
    views = [memoryview(bytearray(_HASH_BLOCK)), memoryview(bytearray(_HASH_BLOCK))]
    position = 0
    with open(path, "rb", buffering=0) as fh, ThreadPoolExecutor(2, thread_name_prefix="hash-file") as pool:
        n = fh.readinto(views[0])
        k = 0
        while n:
            current = views[k % 2][:n]
            next_read = pool.submit(fh.readinto, views[(k + 1) % 2])
            job = pool.submit(chunk_digests, current, position) if per_chunk else None
            whole.update(current)
            if job is not None:
                job.result()
            position += n
            n = next_read.result()
            k += 1
    if state[0] is not None:  # the last, shorter chunk
        chunks[state[1]] = (position - state[1], state[0].digest())
    return whole.hexdigest(), chunks
