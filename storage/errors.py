"""Storage exceptions.

A deliberately small hierarchy so the web layer can map each kind to one
HTTP status (404 / 503 / 500) without knowing which backend raised it.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by the storage layer."""

    code = "storage_error"


class InvalidKey(StorageError, ValueError):
    """The key could escape the store or is otherwise malformed (caller's bug or hostile input)."""

    code = "invalid_key"


class ObjectNotFound(StorageError, KeyError):
    """No object is stored under the key."""

    code = "object_not_found"

    def __str__(self) -> str:  # KeyError quotes its argument; we want a plain message
        return str(self.args[0]) if self.args else "object not found"


class StorageUnavailable(StorageError):
    """The backend could not be reached after bounded retries; nothing was changed."""

    code = "storage_unavailable"


class IntegrityError(StorageError):
    """Stored bytes do not match their recorded SHA-256."""

    code = "storage_integrity"
