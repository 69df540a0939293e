"""The one interface every object store backend implements.

Callers (tiling, ingest, reports) only ever see :class:`ObjectStore`, in the way
large_image hides each tile source behind one class: swapping the embedded
folder for MinIO is a change of ``STORAGE_URL``, never of calling code.
"""

from __future__ import annotations

import abc
import datetime as dt
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator, Mapping

#: User-metadata key under which every write records the object's SHA-256 (hex).
SHA256_META = "sha256"


@dataclass(frozen=True)
class ObjectInfo:
    """What a ``stat`` (or a finished write) knows about one object."""

    key: str
    size: int
    etag: str
    content_type: str = "application/octet-stream"
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_modified: dt.datetime | None = None

    @property
    def sha256(self) -> str | None:
        return self.metadata.get(SHA256_META)


class RangeReader:
    """Repeated ranged reads of one object, for readers that hit the same object many times.

    The default goes through :meth:`ObjectStore.get_range` each time; a backend
    that can keep the object open (the local folder: one descriptor and
    ``pread``) overrides :meth:`ObjectStore.open_ranged`. Safe to share between
    threads; released when the last reference goes.
    """

    def __init__(self, store: "ObjectStore", key: str) -> None:
        self.store = store
        self.key = key

    def read(self, offset: int, length: int) -> bytes:
        return self.store.get_range(self.key, offset, length)


class ObjectStore(abc.ABC):
    """Abstract object store. Keys are validated by :func:`storage.keys.validate_key`.

    All methods raise :class:`storage.errors.StorageError` subclasses only:
    ``ObjectNotFound`` for a missing key, ``StorageUnavailable`` when the backend
    stays unreachable after bounded retries, ``InvalidKey`` for a bad key.
    """

    #: Human-readable description without credentials (safe to log).
    description: str = ""

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store ``data`` atomically under ``key``, recording its SHA-256 in metadata."""

    @abc.abstractmethod
    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream",
                   metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store a stream of known or unknown length (multipart above a threshold)."""

    def put_file(self, key: str, path: str, *, content_type: str = "application/octet-stream",
                 metadata: Mapping[str, str] | None = None, move: bool = False,
                 sha256: str | None = None) -> ObjectInfo:
        """Store a local file; backends may override with a faster path.

        ``move=True`` lets a backend take the file itself when it can (the local
        folder renames it on the same filesystem instead of copying gigabytes);
        the caller must not use ``path`` afterwards. ``sha256`` is the caller's
        already verified digest, which spares re-reading the file.
        """
        import os
        with open(path, "rb") as fh:
            return self.put_stream(key, fh, length=os.path.getsize(path),
                                   content_type=content_type, metadata=metadata)

    @abc.abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the whole object."""

    @abc.abstractmethod
    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield the object in chunks (for streaming downloads)."""

    @abc.abstractmethod
    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Return ``length`` bytes from ``offset`` (fewer at the end of the object)."""

    def open_ranged(self, key: str) -> RangeReader:
        """A :class:`RangeReader` for ``key`` (only for objects that are never rewritten in place)."""
        return RangeReader(self, key)

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, etag, content type and user metadata of one object."""

    def exists(self, key: str) -> bool:
        from .errors import ObjectNotFound
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object; deleting a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (all pages), in key order."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; return how many were deleted."""
        count = 0
        for info in list(self.list(prefix)):
            self.delete(info.key)
            count += 1
        return count

    @abc.abstractmethod
    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        """Server-side copy keeping content type and metadata."""

    def presigned_get_url(self, key: str, expires: dt.timedelta = dt.timedelta(hours=1)) -> str | None:
        """A time-limited URL to GET the object directly, or None when unsupported."""
        return None

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise ``StorageUnavailable`` unless the store answers now (for /readyz)."""
