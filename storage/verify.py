"""Integrity: SHA-256 while streaming, verified reads and downloads, and scrubbing.

Every write records the SHA-256 of the bytes in user metadata (``sha256``).
The hash is computed on the bytes as they pass through, so a write never reads
its input twice and the recorded value describes exactly what was sent.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Mapping

from .base import ObjectStore
from .errors import IntegrityError, ObjectNotFound


class HashingReader:
    """File-like wrapper that hashes what is read and stops at ``limit`` bytes if given."""

    def __init__(self, stream: BinaryIO, limit: int | None = None) -> None:
        self._stream = stream
        self._limit = limit
        self.consumed = 0
        self._hash = hashlib.sha256()
        try:
            self._start = stream.tell() if stream.seekable() else None
        except (AttributeError, OSError, ValueError):
            self._start = None

    def read(self, size: int = -1) -> bytes:
        if self._limit is not None:
            remaining = self._limit - self.consumed
            if remaining <= 0:
                return b""
            size = remaining if size is None or size < 0 else min(size, remaining)
        data = self._stream.read(size)
        if data:
            self._hash.update(data)
            self.consumed += len(data)
        return data

    def rewind(self) -> bool:
        """Go back to the first byte so an upload can be replayed; False if the stream cannot."""
        if self.consumed == 0:
            return True
        if self._start is None:
            return False
        self._stream.seek(self._start)
        self.consumed = 0
        self._hash = hashlib.sha256()
        return True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a local file, read in large blocks by the standard library."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@dataclass(frozen=True)
class Corruption:
    key: str
    expected: str
    actual: str


@dataclass
class ScrubReport:
    """Outcome of :func:`scrub`; ``clean`` is what a health check wants."""

    checked: int = 0
    bytes_read: int = 0
    ok: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupted: list[Corruption] = field(default_factory=list)
    #: Objects with no recorded hash and none expected (e.g. written by another tool).
    unverifiable: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.corrupted)


def _sha256_of(store: ObjectStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in store.open_stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def scrub(store: ObjectStore, prefix: str = "", expected: Mapping[str, str] | None = None) -> ScrubReport:
    """Re-read every object under ``prefix`` and compare its SHA-256 with what it should be.

    ``expected`` (key -> sha256, e.g. from the database) wins over the hash stored
    in the object's own metadata, because metadata can be rewritten together with
    the bytes; keys in ``expected`` that are not stored are reported as missing.
    """
    report = ScrubReport()
    expected = dict(expected or {})
    seen: set[str] = set()
    for info in store.list(prefix):
        seen.add(info.key)
        try:
            recorded = store.stat(info.key).sha256
            actual, size = _sha256_of(store, info.key)
        except ObjectNotFound:  # deleted while we were scrubbing
            seen.discard(info.key)
            continue
        report.checked += 1
        report.bytes_read += size
        want = expected.get(info.key) or recorded
        if want is None:
            report.unverifiable.append(info.key)
        elif actual != want.lower():
            report.corrupted.append(Corruption(info.key, want.lower(), actual))
        else:
            report.ok.append(info.key)
    report.missing = sorted(k for k in expected if k.startswith(prefix) and k not in seen)
    return report


def read_verified(store: ObjectStore, key: str, expected_sha256: str | None = None) -> bytes:
    """Return the object's bytes, raising IntegrityError unless they hash to the expected value."""
    for attempt in range(2):
        info = None if expected_sha256 else store.stat(key)
        want = expected_sha256 or info.sha256  # type: ignore[union-attr]
        if not want:
            raise IntegrityError(f"{key}: no SHA-256 recorded and none given; cannot verify")
        data = store.get_bytes(key)
        actual = hashlib.sha256(data).hexdigest()
        if actual == want.lower():
            return data
        # A concurrent overwrite between stat and get is not corruption: look once more.
        if info is None or attempt == 1 or store.stat(key).etag == info.etag:
            break
    raise IntegrityError(f"{key}: SHA-256 mismatch (expected {want}, got {actual})")


def download_verified(store: ObjectStore, key: str, target: str | os.PathLike[str],
                      expected_sha256: str | None = None, *, expected_size: int | None = None,
                      temp_prefix: str = ".download-") -> Path:
    """Copy an object into the local file ``target``, published only if its bytes are the right ones.

    The bytes are streamed into a temporary file next to ``target`` (named ``temp_prefix…``, so a
    caller can sweep what a killed process left) and hashed on the way; ``target`` appears, by one
    atomic rename, only when the SHA-256 equals ``expected_sha256`` (by default the hash recorded
    in the object's metadata) and, if given, the size equals ``expected_size``.  Otherwise the
    temporary file is removed and :class:`IntegrityError` raised, so a corrupted or truncated copy
    is never left where a reader would take it.  An object with no recorded hash, when none is
    given, is checked on its size alone.
    """
    target = Path(target)
    want = expected_sha256 or store.stat(key).sha256
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for chunk in store.open_stream(key):
                digest.update(chunk)
                out.write(chunk)
                written += len(chunk)
        actual = digest.hexdigest()
        if expected_size is not None and written != expected_size:
            raise IntegrityError(f"{key}: {written} bytes downloaded, {expected_size} expected")
        if want and actual != want.lower():
            raise IntegrityError(f"{key}: SHA-256 mismatch (expected {want}, got {actual})")
        os.replace(tmp, target)
        tmp = None
        return target
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
