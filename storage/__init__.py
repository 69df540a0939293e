"""Object storage: one :class:`ObjectStore` interface, a local-folder and an S3 backend.

``open_store(STORAGE_URL)`` is the only entry point application code needs.
"""

from __future__ import annotations

from .base import SHA256_META, ObjectInfo, ObjectStore
from .errors import IntegrityError, InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from .keys import validate_key, validate_prefix
from .url import LocalConfig, parse_storage_url
from .verify import ScrubReport, download_verified, read_verified, scrub

__all__ = [
    "SHA256_META", "ObjectInfo", "ObjectStore", "IntegrityError", "InvalidKey", "ObjectNotFound",
    "StorageError", "StorageUnavailable", "download_verified", "open_store", "read_verified", "scrub",
    "ScrubReport",
    "validate_key", "validate_prefix",
]


def open_store(url: str) -> ObjectStore:
    """Backend for ``file:///abs/path`` or ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=...``."""
    config = parse_storage_url(url)
    if isinstance(config, LocalConfig):
        from .local import LocalStore
        return LocalStore(config.root)
    from .s3 import S3Store  # keeps minio out of local-only processes
    return S3Store(config.endpoint, config.access_key, config.secret_key, config.bucket,
                   secure=config.secure, region=config.region)
