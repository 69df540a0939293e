"""Local disk copies of tile packs held in a remote object store.

With S3 every tile costs a ranged GET to the gateway (about 2 ms and a share of
the gateway's CPU), which caps a web node at a few hundred tiles per second.
Packs are immutable (their key and manifest entry change with the pyramid
version), so a web node may keep copies on its own disk and ``pread`` tiles
from them, as a CDN edge would. The first request for a pack is still answered
by a ranged GET while the whole pack is fetched in the background; later ones
read the local copy.

The cache is bounded (least recently opened copies go first), shared by the
worker processes of a node (copies are published by atomic rename, so two
processes fetching the same pack at once is harmless), verified against the
object's stored SHA-256 before use, and disposable: deleting the folder only
costs re-fetching.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from storage.base import ObjectStore, RangeReader
from storage.errors import IntegrityError, StorageError
from storage.verify import download_verified

log = logging.getLogger("pathology_hub.tiling")

_TOUCH_INTERVAL = 60.0  # refresh a copy's mtime (its LRU age) at most once a minute per process


class _CopyReader(RangeReader):
    """``pread`` from the local copy; the descriptor closes with the last reference."""

    def __init__(self, fh, key: str) -> None:
        self._fh = fh
        self._fd = fh.fileno()
        self.key = key

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)


class PackCache:
    """A bounded folder of verified pack copies, filled in the background."""

    def __init__(self, store: ObjectStore, directory: Path, max_bytes: int, *, fetch_threads: int = 2) -> None:
        self.store = store
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._namespace = hashlib.sha256(store.description.encode()).hexdigest()[:16]
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._touched: dict[str, float] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._fetch_threads = fetch_threads
        self._remove_stale_temps()

    def _remove_stale_temps(self) -> None:
        """Partial downloads left by a killed process (an hour is far longer than any fetch)."""
        cutoff = time.time() - 3600
        for tmp in self.directory.glob(".fetch-*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                pass

    def _path(self, key: str, size: int) -> Path:
        digest = hashlib.sha256(f"{self._namespace}|{key}|{size}".encode()).hexdigest()
        return self.directory / f"{digest}.pack"

    def reader(self, key: str, size: int) -> RangeReader | None:
        """A reader on the local copy, or None (and a background fetch) when there is none yet."""
        path = self._path(key, size)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            self._schedule(key, size, path)
            return None
        if os.fstat(fh.fileno()).st_size != size:  # cannot happen with rename publishing; be safe
            fh.close()
            path.unlink(missing_ok=True)
            return None
        self._touch(path)
        return _CopyReader(fh, key)

    def _touch(self, path: Path) -> None:
        now = time.monotonic()
        name = path.name
        if now - self._touched.get(name, 0.0) > _TOUCH_INTERVAL:
            self._touched[name] = now
            try:
                os.utime(path)
            except OSError:
                pass

    def _schedule(self, key: str, size: int, path: Path) -> None:
        with self._lock:
            if path.name in self._inflight:
                return
            self._inflight.add(path.name)
            if self._pool is None or self._pool_pid != os.getpid():  # a forked worker needs its own threads
                self._pool = ThreadPoolExecutor(self._fetch_threads, thread_name_prefix="pack-cache")
                self._pool_pid = os.getpid()
            pool = self._pool
        pool.submit(self._fetch, key, size, path)

    def fetch_now(self, key: str, size: int) -> bool:
        """Fetch one pack synchronously (used by tests and warm-up); True when a copy is in place."""
        path = self._path(key, size)
        if not path.exists():
            with self._lock:
                self._inflight.add(path.name)
            self._fetch(key, size, path)
        return path.exists()

    def _fetch(self, key: str, size: int, path: Path) -> None:
        try:
            # checked against the SHA-256 recorded with the object (and the manifest's size)
            download_verified(self.store, key, path, expected_size=size, temp_prefix=".fetch-")
            self._evict()
        except IntegrityError as exc:
            log.warning("pack copy rejected", extra={"key": key, "expected_size": size, "error": str(exc)})
        except StorageError as exc:
            log.info("pack copy not fetched", extra={"key": key, "error": type(exc).__name__})
        except OSError as exc:
            log.warning("pack cache write failed", extra={"key": key, "error": str(exc)})
        finally:
            with self._lock:
                self._inflight.discard(path.name)

    def _evict(self) -> None:
        """Delete the least recently used copies until the folder is under its bound."""
        entries = []
        total = 0
        with os.scandir(self.directory) as it:
            for entry in it:
                if entry.name.endswith(".pack"):
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    entries.append((st.st_mtime, st.st_size, entry.path))
                    total += st.st_size
        if total <= self.max_bytes:
            return
        for _mtime, size, path in sorted(entries):
            try:
                os.unlink(path)  # open readers keep their inode until they let go
            except FileNotFoundError:
                pass
            total -= size
            if total <= self.max_bytes * 0.9:
                break

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.glob("*.pack"))
