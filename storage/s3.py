"""S3 backend through the MinIO SDK (tested against Ceph RADOS Gateway and usable with MinIO/AWS).

Failure policy: the SDK's own urllib3 retries are disabled and connect timeouts
are short, so :func:`storage.retry.retry_call` is the only retry layer and an
unreachable store turns into StorageUnavailable within about a second (refused
connection) or ``attempts x connect_timeout`` (black-holed host).

Streams of unknown length are staged under the hidden ``.incoming/`` prefix and
then server-side copied onto the key with the SHA-256 in metadata, because S3
fixes user metadata when an upload starts, before the hash is known. Readers
never see a partial object or one without its hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import time
import uuid
from typing import Any, BinaryIO, Callable, Iterator, Mapping, TypeVar

import certifi
import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError
from minio.helpers import check_bucket_name

from .base import SHA256_META, ObjectInfo, ObjectStore
from .errors import InvalidKey, ObjectNotFound, StorageError, StorageUnavailable
from .keys import validate_key, validate_metadata, validate_prefix
from .retry import RetryPolicy, retry_call
from .verify import HashingReader, file_sha256

T = TypeVar("T")

#: Multipart part size; also the largest stream buffered in memory as one PUT.
PART_SIZE = 16 * 1024 * 1024
INCOMING = ".incoming/"
_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "ResourceNotFound"}
_TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
                    "RequestTimeTooSkewed", "OperationAborted", "XMinioServerNotInitialized"}


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: the network, the server being busy or briefly broken."""
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, ServerError):
        return exc.status_code >= 500
    if isinstance(exc, InvalidResponseError):
        return "Response code: 5" in str(exc)
    if isinstance(exc, S3Error):
        status = getattr(exc.response, "status", 0) or 0
        return exc.code in _TRANSIENT_CODES or status >= 500
    return False


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    return {k[len("x-amz-meta-"):].lower(): v for k, v in headers.items()
            if k.lower().startswith("x-amz-meta-")}


class S3Store(ObjectStore):
    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *,
                 secure: bool = True, region: str = "us-east-1", connect_timeout: float = 2.0,
                 read_timeout: float = 30.0, retry: RetryPolicy = RetryPolicy(),
                 max_connections: int = 64) -> None:
        check_bucket_name(bucket)  # ValueError at configuration time, not at first upload
        self.bucket = bucket
        self.retry = retry
        self.description = f"{'https' if secure else 'http'}://{endpoint}/{bucket} (s3)"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,  # ours is the only retry layer
            maxsize=max_connections,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        self.client = Minio(endpoint, access_key=access_key, secret_key=secret_key,
                            secure=secure, region=region, http_client=http)
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()

    # -- plumbing ----------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T], *, key: str | None = None,
              can_retry: Callable[[], bool] = lambda: True) -> T:
        """Run one S3 operation with retries and map SDK errors to storage errors."""
        self._ensure_bucket()
        return self._mapped(what, lambda: retry_call(
            fn, policy=self.retry, is_transient=is_transient, what=f"{self.description}: {what}",
            can_retry=can_retry), key)

    def _mapped(self, what: str, fn: Callable[[], T], key: str | None) -> T:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - _translate re-raises what it does not know
            mapped = self._translate(exc, what, key)
            if mapped is exc:
                raise
            raise mapped from exc

    def _translate(self, exc: Exception, what: str, key: str | None) -> Exception:
        """The storage error a caller should see for an SDK exception."""
        if isinstance(exc, StorageError):
            return exc
        if isinstance(exc, S3Error):
            if exc.code in _NOT_FOUND:
                return ObjectNotFound(f"no object {key!r}")
            return StorageError(f"{self.description}: {what} failed: {exc.code}: {exc.message}")
        if isinstance(exc, (ServerError, InvalidResponseError, ValueError)):
            return StorageError(f"{self.description}: {what} failed: {exc}")
        return exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if self._bucket_ready:
                return

            def make() -> None:
                if not self.client.bucket_exists(self.bucket):
                    try:
                        self.client.make_bucket(self.bucket)
                    except S3Error as exc:  # lost a creation race: fine
                        if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                            raise
            self._mapped("create bucket", lambda: retry_call(
                make, policy=self.retry, is_transient=is_transient,
                what=f"{self.description}: create bucket"), None)
            self._bucket_ready = True

    # -- writes ------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        meta = validate_metadata(dict(metadata or {}))
        meta[SHA256_META] = hashlib.sha256(data).hexdigest()
        result = self._call("put", lambda: self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type,
            metadata=dict(meta), part_size=PART_SIZE), key=key)
        return ObjectInfo(key=key, size=len(data), etag=result.etag, content_type=content_type,
                          metadata=meta, last_modified=dt.datetime.now(dt.timezone.utc))

    def put_file(self, key: str, path: str, *, content_type: str = "application/octet-stream",
                 metadata: Mapping[str, str] | None = None, move: bool = False,
                 sha256: str | None = None) -> ObjectInfo:
        # A file can be read twice: hash it first (unless the caller already verified it),
        # then upload straight to the key with the hash in metadata, skipping the staging
        # copy put_stream needs. ``move`` changes nothing here: the bytes must travel anyway.
        validate_key(key)
        meta = validate_metadata(dict(metadata or {}))
        if sha256 is None:
            sha256 = file_sha256(path)
        meta[SHA256_META] = sha256
        size = os.path.getsize(path)

        def upload() -> Any:
            with open(path, "rb") as fh:
                return self.client.put_object(self.bucket, key, fh, size, content_type=content_type,
                                              metadata=dict(meta), part_size=PART_SIZE)
        result = self._call("put", upload, key=key)
        return ObjectInfo(key=key, size=size, etag=result.etag, content_type=content_type,
                          metadata=meta, last_modified=dt.datetime.now(dt.timezone.utc))

    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream",
                   metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        validate_key(key)
        if length is not None and length <= PART_SIZE:
            data = stream.read(length) if length else b""
            if len(data) != length:
                raise StorageError(f"{key}: stream ended after {len(data)} of {length} bytes")
            return self.put_bytes(key, data, content_type=content_type, metadata=metadata)
        meta = validate_metadata(dict(metadata or {}))
        staging = f"{INCOMING}{uuid.uuid4().hex}"
        reader = HashingReader(stream, limit=length)

        def upload() -> Any:
            if not reader.rewind():
                raise StorageUnavailable(f"{key}: upload interrupted and the stream cannot be replayed")
            return self.client.put_object(self.bucket, staging, reader, -1 if length is None else length,
                                          content_type=content_type, part_size=PART_SIZE)
        try:
            self._call("put", upload, key=key, can_retry=lambda: reader.rewind())
            if length is not None and reader.consumed != length:
                raise StorageError(f"{key}: stream ended after {reader.consumed} of {length} bytes")
            meta[SHA256_META] = reader.hexdigest()
            headers = {"Content-Type": content_type, **meta}
            result = self._call("publish", lambda: self.client.copy_object(
                self.bucket, key, CopySource(self.bucket, staging), metadata=headers,
                metadata_directive=REPLACE), key=key)
        finally:
            try:
                self._call("drop staging", lambda: self.client.remove_object(self.bucket, staging))
            except StorageError:
                pass  # orphaned staging objects are invisible; purge_incoming() collects them
        return ObjectInfo(key=key, size=reader.consumed, etag=result.etag, content_type=content_type,
                          metadata=meta, last_modified=dt.datetime.now(dt.timezone.utc))

    # -- reads -------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        validate_key(key)

        def fetch() -> bytes:
            resp = self.client.get_object(self.bucket, key)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()
        return self._call("get", fetch, key=key)

    def open_stream(self, key: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        validate_key(key)
        first = self._call("get", lambda: self.client.get_object(self.bucket, key), key=key)
        etag = first.headers.get("ETag", "")

        def chunks() -> Iterator[bytes]:
            # On a dropped connection, resume with a Range request pinned to the
            # same ETag, so a long download survives a gateway restart.
            resp, pos = first, 0
            while True:
                try:
                    for chunk in resp.stream(chunk_size):
                        pos += len(chunk)
                        yield chunk
                    return
                except Exception as exc:  # noqa: BLE001
                    if not is_transient(exc):
                        raise
                finally:
                    resp.close()
                    resp.release_conn()
                resp = self._call("get (resume)", lambda: self.client.get_object(
                    self.bucket, key, offset=pos, request_headers={"If-Match": etag}), key=key)
        return chunks()

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        validate_key(key)
        if offset < 0 or length < 0:
            raise InvalidKey(f"range offset/length must be >= 0 (got {offset}, {length})")
        if length == 0:
            self.stat(key)  # still report a missing object
            return b""

        def fetch() -> bytes:
            resp = self.client.get_object(self.bucket, key, offset=offset, length=length)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()
        try:
            return self._call("get range", fetch, key=key)
        except StorageError as exc:
            if isinstance(exc.__cause__, S3Error) and exc.__cause__.code == "InvalidRange":
                self.stat(key)
                return b""  # offset at or past the end, like a file read
            raise

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        st = self._call("stat", lambda: self.client.stat_object(self.bucket, key), key=key)
        return ObjectInfo(key=key, size=int(st.size or 0), etag=st.etag or "",
                          content_type=st.content_type or "application/octet-stream",
                          metadata=_user_metadata(st.metadata or {}), last_modified=st.last_modified)

    # -- namespace ---------------------------------------------------------
    def delete(self, key: str) -> None:
        validate_key(key)
        self._call("delete", lambda: self.client.remove_object(self.bucket, key), key=key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str, hidden: bool = False) -> Iterator[ObjectInfo]:
        """All pages in key order; a failed page fetch restarts after the last key seen.

        The SDK's listing generator dies with its first exception, so the retry
        has to live out here rather than in :meth:`_call`.
        """
        self._ensure_bucket()
        last: str | None = None
        failures, first_failure = 0, 0.0
        while True:
            try:
                for obj in self.client.list_objects(self.bucket, prefix=prefix or None, recursive=True,
                                                    start_after=last):
                    last, failures = obj.object_name, 0
                    if obj.object_name.startswith(".") and not hidden:
                        continue
                    yield ObjectInfo(key=obj.object_name, size=int(obj.size or 0), etag=obj.etag or "",
                                     last_modified=obj.last_modified)
                return
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_transient(exc):
                    mapped = self._translate(exc, "list", None)
                    if mapped is exc:
                        raise
                    raise mapped from exc
                failures += 1
                if failures == 1:
                    first_failure = time.monotonic()
                pause = self.retry.delay(failures)
                if (failures >= self.retry.attempts
                        or time.monotonic() - first_failure + pause > self.retry.budget):
                    raise StorageUnavailable(
                        f"{self.description}: list unavailable after {failures} attempt(s): {exc}") from exc
                time.sleep(pause)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        return self._delete_keys([info.key for info in self.list(prefix)])

    def _delete_keys(self, keys: list[str]) -> int:
        def remove() -> list[Any]:
            # The SDK sends batches of 1000 (the S3 limit) and yields per-key errors.
            return list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        errors = self._call("delete many", remove) if keys else []
        if errors:
            raise StorageError(f"{self.description}: {len(errors)} deletions failed, first: {errors[0]}")
        return len(keys)

    def purge_incoming(self, older_than: dt.timedelta = dt.timedelta(days=1)) -> int:
        """Remove staging objects left behind by crashed uploads (run from a periodic job)."""
        cutoff = dt.datetime.now(dt.timezone.utc) - older_than
        return self._delete_keys([i.key for i in self._list(INCOMING, hidden=True)
                                  if i.last_modified and i.last_modified < cutoff])

    def copy(self, src_key: str, dst_key: str) -> ObjectInfo:
        validate_key(src_key)
        validate_key(dst_key)
        src = self.stat(src_key)
        headers = {"Content-Type": src.content_type, **src.metadata}
        # REPLACE with the source's own metadata works for objects above 5 GiB too
        # (the SDK switches to multipart copy, where COPY is not allowed).
        result = self._call("copy", lambda: self.client.copy_object(
            self.bucket, dst_key, CopySource(self.bucket, src_key), metadata=headers,
            metadata_directive=REPLACE), key=src_key)
        return ObjectInfo(key=dst_key, size=src.size, etag=result.etag, content_type=src.content_type,
                          metadata=dict(src.metadata), last_modified=dt.datetime.now(dt.timezone.utc))

    def presigned_get_url(self, key: str, expires: dt.timedelta = dt.timedelta(hours=1)) -> str | None:
        validate_key(key)
        # Signing is local (no request), so no retry or bucket check is needed.
        return self._mapped("presign", lambda: self.client.presigned_get_object(
            self.bucket, key, expires=expires), key)

    def ping(self) -> None:
        self._bucket_ready = False  # re-check the bucket: that is a real round trip
        self._ensure_bucket()
