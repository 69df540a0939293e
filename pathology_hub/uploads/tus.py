"""tus 1.0.0 resumable upload server core, independent of any web framework.

Implements the core protocol plus the creation, creation-with-upload,
creation-defer-length, termination, checksum and expiration extensions
(https://tus.io/protocols/resumable-upload). A web adapter turns its request
into a :class:`TusRequest`, calls :meth:`TusServer.handle` and sends back the
:class:`TusResponse`; that keeps every protocol decision testable without HTTP.

Slide files are large (up to tens of GB) and gunicorn runs several worker
processes, so: bodies are streamed to disk in blocks, a PATCH holds a per-upload
``flock`` (see :mod:`.staging`), long PATCHes checkpoint their progress so a
killed worker loses little, and the whole-file SHA-256 is hashed while bytes
arrive whenever this process saw the previous bytes, re-reading from disk only
the part written elsewhere (hashlib state cannot be shared between processes; see
:mod:`.hashing`, which owns that machinery).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Mapping

from .hashing import HASHES, BackgroundHashing, hash_file_range
from .staging import (
    ACTIVE,
    COMPLETE,
    COMPLETING,
    FAILED,
    HANDOVER_PENDING,
    STORING,
    InvalidUploadId,
    StagingArea,
    UploadInfo,
    UploadLocked,
    UploadNotFound,
    aligned_buffer,
    new_upload_id,
    validate_upload_id,
)

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "checksum",
    "expiration",
)
#: Per-chunk checksum algorithms (tuspy sends sha1, tus-js-client none by default).
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "sha512", "md5")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
#: Metadata key under which a client may send the hex SHA-256 of the whole file.
SHA256_METADATA_KEY = "sha256"

_BLOCK = 4 << 20  # read/write unit for request bodies
_HEX64 = frozenset("0123456789abcdef")


def _fill(readinto: Callable[[memoryview], int], view: memoryview) -> int:
    """Fill ``view`` from ``readinto`` until full or the body ends; the byte count.

    Socket reads return what happens to be there (often 64 KiB); writing and
    hashing in whole blocks keeps the per-call overhead out of the hot loop.
    Bytes read before an error are returned, not lost; the error shows on the next call.
    """
    got = 0
    while got < len(view):
        try:
            n = readinto(view[got:])
        except OSError:
            if got:
                return got
            raise
        if not n:
            break
        got += n
    return got


class UploadRefused(Exception):
    """A request the server (or an application hook) refuses, with its HTTP status.

    Hooks raise it, e.g. ``UploadRefused(413, "quota_exceeded", "...")``;
    the message ends up in the JSON error body, so write it for the user.
    ``details`` (JSON-serialisable) goes into the body too, for clients and for
    adapters that word the message in the user's language. ``retry_after``
    (seconds) is sent as ``Retry-After``; raised by ``on_complete`` it means
    "not now": the verified bytes are kept and the hand-over is retried.
    """

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None, *,
                 details: Mapping[str, Any] | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = dict(details or {})
        self.retry_after = retry_after
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(int(retry_after)))


class ClientDisconnected(OSError):
    """The request body ended before its Content-Length (adapters raise this from their stream)."""


@dataclass
class TusRequest:
    """A framework-neutral request. ``path_id`` is None for the collection URL.

    ``location_base`` is the collection URL used to build ``Location``;
    ``principal`` is whatever the adapter's authentication returned and is
    only passed through to the application hooks.
    """

    method: str
    path_id: str | None
    headers: Mapping[str, str]
    body: BinaryIO | None = None
    content_length: int | None = None
    location_base: str = ""
    principal: object = None

    def __post_init__(self) -> None:
        self.headers = {k.lower(): v for k, v in self.headers.items()}

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return value.strip() if isinstance(value, str) else value


@dataclass
class TusResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


BeforeCreate = Callable[[int | None, dict[str, str], object], Mapping[str, Any] | None]
OnComplete = Callable[[UploadInfo], None]
Authorize = Callable[[UploadInfo, object], bool]
#: ``on_end(info, reason)``: the upload ended without reaching the application
#: (reason "cancelled", "expired" or "failed"), so its reservations can be released.
OnEnd = Callable[[UploadInfo, str], None]

#: Seconds a client is told to wait while another request hands the upload over.
HANDOVER_BUSY_RETRY_AFTER = 5


def http_date(value: dt.datetime) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Wed, 25 Jun 2014 16:00:00 GMT``."""
    return email.utils.format_datetime(value.astimezone(dt.timezone.utc), usegmt=True)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# ---------------------------------------------------------------------------
# header parsing
# ---------------------------------------------------------------------------

def parse_metadata(value: str | None) -> dict[str, str]:
    """Decode ``Upload-Metadata`` (``key base64,key2 base64,...``; a value may be absent)."""
    result: dict[str, str] = {}
    if not value or not value.strip():
        return result
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if len(parts) > 2 or not key or not key.isascii():
            raise UploadRefused(400, "invalid_metadata",
                                f"Upload-Metadata pair {pair.strip()!r} is not 'key base64value'.")
        if key in result:
            raise UploadRefused(400, "invalid_metadata", f"Upload-Metadata key {key!r} appears twice.")
        try:
            decoded = base64.b64decode(parts[1], validate=True) if len(parts) == 2 else b""
            result[key] = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise UploadRefused(400, "invalid_metadata",
                                f"Upload-Metadata value of {key!r} is not base64-encoded UTF-8.") from None
    return result


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(
        f"{k} {base64.b64encode(v.encode('utf-8')).decode('ascii')}" if v else k
        for k, v in metadata.items()
    )


def _parse_int(value: str | None, header: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise UploadRefused(400, "invalid_header", f"{header} must be a non-negative integer, got {value!r}.")
    return int(value)


@dataclass(frozen=True)
class _Checksum:
    algorithm: str
    digest: bytes


def _parse_checksum(value: str | None) -> _Checksum | None:
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 2:
        raise UploadRefused(400, "invalid_checksum", "Upload-Checksum must be '<algorithm> <base64 digest>'.")
    algorithm = parts[0].lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise UploadRefused(400, "unsupported_checksum_algorithm",
                            f"Checksum algorithm {parts[0]!r} is not supported; "
                            f"use one of {', '.join(CHECKSUM_ALGORITHMS)}.")
    try:
        digest = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise UploadRefused(400, "invalid_checksum", "Upload-Checksum digest is not valid base64.") from None
    return _Checksum(algorithm, digest)


def _parse_repr_digest(value: str | None) -> str | None:
    """The hex SHA-256 of the whole file from ``Repr-Digest: sha-256=:<base64>:`` (RFC 9530,
    as the IETF resumable-uploads draft uses it on append requests); other algorithms are ignored."""
    if value is None:
        return None
    for member in value.split(","):
        name, _, item = member.strip().partition("=")
        if name.strip().lower() != "sha-256":
            continue
        item = item.strip()
        try:
            if not (len(item) > 2 and item[0] == ":" and item[-1] == ":"):
                raise ValueError
            digest = base64.b64decode(item[1:-1], validate=True)
        except (ValueError, binascii.Error):
            digest = b""
        if len(digest) != 32:
            raise UploadRefused(400, "invalid_header",
                                "Repr-Digest must be sha-256=:<base64 of the 32-byte SHA-256>: (RFC 9530).")
        return digest.hex()
    return None


def _content_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


# ---------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------

class TusServer:
    """Answers tus requests for uploads staged in one :class:`StagingArea`.

    Hooks:
    * ``before_create(length, metadata, principal)`` may raise
      :class:`UploadRefused` (quota, size, missing metadata) and returns the
      owner context (a JSON-serialisable dict) stored with the upload.
    * ``on_complete(info)`` runs under the upload's lock when every byte
      arrived and the whole-file SHA-256 (``info.sha256``) matched the
      client's; it reads ``info.data_path``, which is deleted only after it
      returned. Raising :class:`UploadRefused` marks the upload failed with
      that code, unless the refusal carries ``retry_after`` (storage down):
      then, as after any unexpected exception, the upload becomes ``storing``,
      its verified bytes are kept and the hand-over is tried again by the next
      HEAD or PATCH and by :meth:`retry_pending` (run it periodically), so it
      must be idempotent. It runs once successfully.
    * ``on_end(info, reason)`` runs when an upload ends without being handed
      over: terminated (DELETE), expired, or failed.
    * ``authorize(info, principal)`` returning False answers 404, so other
      users cannot even learn that an upload id exists.

    All bytes received but the hand-over pending (``storing``): the PATCH that
    brought the last bytes answers 503 with ``Retry-After`` and
    ``Upload-Offset`` = length (nothing needs resending). A later HEAD (or an
    empty PATCH at the final offset) tries the hand-over again: once it
    succeeds HEAD answers 200 with ``Upload-Offset`` = ``Upload-Length``, so
    tus clients resume straight to "done". While it still cannot, HEAD answers
    423 with ``Retry-After`` and *no* ``Upload-Offset``: tus-js-client creates
    a brand-new upload on any other non-2xx HEAD (and would re-send the whole
    file) but retries a 423, and tuspy reads ``Upload-Offset`` whatever the
    status, so an offset there would make it report success too early.
    """

    def __init__(
        self,
        staging: StagingArea,
        *,
        max_size: int,
        expiration: dt.timedelta,
        chunk_limit: int | None = None,
        before_create: BeforeCreate | None = None,
        on_complete: OnComplete | None = None,
        authorize: Authorize | None = None,
        on_end: OnEnd | None = None,
        handover_retry_after: int = 10,
        lock_wait: float = 3.0,
        checkpoint_bytes: int = 64 << 20,
        incremental_catchup: int = 256 << 20,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.staging = staging
        self.max_size = max_size
        self.expiration = expiration
        self.chunk_limit = chunk_limit
        self.before_create = before_create
        self.on_complete = on_complete
        self.authorize = authorize
        self.on_end = on_end
        self.handover_retry_after = handover_retry_after
        self.lock_wait = lock_wait
        self.checkpoint_bytes = checkpoint_bytes
        self.incremental_catchup = incremental_catchup
        self.clock = clock

    # dispatch --------------------------------------------------------------
    @staticmethod
    def _effective_method(req: TusRequest) -> str:
        """``X-HTTP-Method-Override`` counts on a POST only (the way clients behind PATCH-hostile
        proxies send PATCH, HEAD or DELETE). On any other method it is ignored: a GET or HEAD must
        stay a safe request, since CSRF checks and proxies judge a request by its real method."""
        method = req.method.upper()
        override = (req.header("X-HTTP-Method-Override") or "").strip().upper()
        return override if method == "POST" and override else method

    def handle(self, req: TusRequest) -> TusResponse:
        """Answer one request; never raises for client or hook errors."""
        method = self._effective_method(req)
        try:
            if method == "OPTIONS":
                return self._options()
            if method == "GET" and req.path_id is not None:
                return self._status(req)
            self._check_version(req)
            if req.path_id is None:
                if method == "POST":
                    return self._create(req)
                raise UploadRefused(405, "method_not_allowed", f"{method} is not allowed on the upload collection.",
                                    {"Allow": "OPTIONS, POST"})
            if method == "HEAD":
                try:
                    return self._head(req)
                except UploadRefused as exc:
                    # tuspy takes Upload-Offset from any HEAD answer: only a 200 may carry it
                    exc.headers.pop("Upload-Offset", None)
                    raise
            if method == "PATCH":
                return self._patch(req)
            if method == "DELETE":
                return self._delete(req)
            raise UploadRefused(405, "method_not_allowed", f"{method} is not allowed on an upload.",
                                {"Allow": "OPTIONS, HEAD, PATCH, DELETE, GET"})
        except UploadRefused as exc:
            return self._error(exc.status, exc.code, exc.message, exc.headers, exc.details)
        except (UploadNotFound, InvalidUploadId):
            return self._error(404, "upload_not_found", "No such upload; it may have been terminated or "
                                                        "removed after expiring. Start a new upload.")
        except UploadLocked:
            return self._error(423, "upload_locked", "Another request is writing to this upload; "
                                                     "retry in a few seconds.",
                               {"Retry-After": str(HANDOVER_BUSY_RETRY_AFTER)})

    # responses -------------------------------------------------------------
    @staticmethod
    def _headers(**extra: str) -> dict[str, str]:
        headers = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def _error(self, status: int, code: str, message: str,
               headers: Mapping[str, str] | None = None, details: Mapping[str, Any] | None = None) -> TusResponse:
        h = self._headers()
        h.update(headers or {})
        h["Content-Type"] = "application/json"
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = dict(details)
        body = json.dumps({"error": error}).encode("utf-8")
        return TusResponse(status, h, body)

    def _info_headers(self, info: UploadInfo) -> dict[str, str]:
        h = self._headers()
        h["Upload-Offset"] = str(info.offset)
        if info.expires is not None and info.state == ACTIVE:
            h["Upload-Expires"] = http_date(info.expires)
        return h

    # checks ----------------------------------------------------------------
    def _check_version(self, req: TusRequest) -> None:
        version = req.header("Tus-Resumable")
        if version != TUS_VERSION:
            raise UploadRefused(412, "unsupported_version",
                                f"Tus-Resumable must be {TUS_VERSION} (got {version!r}).",
                                {"Tus-Version": TUS_VERSION})

    def _load(self, req: TusRequest, *, allow_failed: bool = False, allow_expired: bool = False) -> UploadInfo:
        upload_id = validate_upload_id(req.path_id or "")
        info = self.staging.load(upload_id)
        if self.authorize is not None and not self.authorize(info, req.principal):
            raise UploadNotFound(upload_id)
        if not allow_expired and info.expires is not None and self.clock() >= info.expires:
            raise UploadRefused(410, "upload_expired",
                                "This upload expired and will be deleted; start a new upload.")
        if info.state == FAILED and not allow_failed:
            err = info.error or {}
            raise UploadRefused(422, err.get("code", "upload_failed"),
                                err.get("message", "This upload failed; start a new upload."),
                                {"Upload-Error": err.get("code", "upload_failed")})
        return info

    # OPTIONS / GET / HEAD / DELETE ------------------------------------------
    def _options(self) -> TusResponse:
        h = self._headers()
        h.update({
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(TUS_EXTENSIONS),
            "Tus-Max-Size": str(self.max_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        })
        return TusResponse(204, h)

    def _head(self, req: TusRequest) -> TusResponse:
        info = self._load(req)
        if info.state in HANDOVER_PENDING:
            info = self._retry_handover_for_head(req, info)
        h = self._info_headers(info)
        if info.length is None:
            h["Upload-Defer-Length"] = "1"
        else:
            h["Upload-Length"] = str(info.length)
        if info.metadata:
            h["Upload-Metadata"] = encode_metadata(info.metadata)
        return TusResponse(200, h)

    def _retry_handover_for_head(self, req: TusRequest, info: UploadInfo) -> UploadInfo:
        """Every byte is here: try the hand-over now; 423 + Retry-After while it cannot be done."""
        try:
            with self.staging.lock(info.id, wait=0):
                info = self._load(req)
                if info.state in HANDOVER_PENDING:
                    info = self._hand_over(info)
                return info
        except UploadLocked:
            raise UploadRefused(423, "upload_storing",
                                "Every byte of this upload arrived; it is being stored right now. "
                                "Check again in a few seconds.",
                                details={"retry_after": HANDOVER_BUSY_RETRY_AFTER},
                                retry_after=HANDOVER_BUSY_RETRY_AFTER) from None
        except UploadRefused as exc:
            if exc.retry_after is None:  # failed for good: the 4xx/5xx as it is
                raise
            raise UploadRefused(423, exc.code, exc.message, exc.headers, details=exc.details,
                                retry_after=exc.retry_after) from None

    def _status(self, req: TusRequest) -> TusResponse:
        """GET: JSON progress for the web UI (not part of tus, no Tus-Resumable needed)."""
        info = self._load(req, allow_failed=True)
        body = {
            "id": info.id, "offset": info.offset, "length": info.length, "state": info.state,
            "sha256": info.sha256, "metadata": info.metadata, "error": info.error,
            "expires": info.expires.isoformat() if info.expires else None,
        }
        h = self._headers()
        h["Content-Type"] = "application/json"
        return TusResponse(200, h, json.dumps(body).encode("utf-8"))

    def _delete(self, req: TusRequest) -> TusResponse:
        upload_id = validate_upload_id(req.path_id or "")
        with self.staging.lock(upload_id, wait=self.lock_wait):
            info = self._load(req, allow_failed=True, allow_expired=True)
            if self.on_end is not None and info.state not in (COMPLETE, FAILED):
                self.on_end(info, "cancelled")  # first: if it fails, the client can DELETE again
            self.staging.delete(upload_id)
        HASHES.drop((str(self.staging.root), upload_id))
        return TusResponse(204, self._headers())

    # POST ------------------------------------------------------------------
    def _create(self, req: TusRequest) -> TusResponse:
        length = _parse_int(req.header("Upload-Length"), "Upload-Length")
        defer = req.header("Upload-Defer-Length")
        if length is None and defer is None:
            raise UploadRefused(400, "missing_length", "Send Upload-Length (or Upload-Defer-Length: 1).")
        if length is not None and defer is not None:
            raise UploadRefused(400, "invalid_header", "Send Upload-Length or Upload-Defer-Length, not both.")
        if defer is not None and defer != "1":
            raise UploadRefused(400, "invalid_header", "Upload-Defer-Length must be 1.")
        if length is not None:
            self._check_size(length)
        metadata = parse_metadata(req.header("Upload-Metadata"))
        expected = metadata.get(SHA256_METADATA_KEY)
        if expected is not None and (len(expected) != 64 or not set(expected.lower()) <= _HEX64):
            raise UploadRefused(400, "invalid_metadata", "Upload-Metadata sha256 must be 64 hex digits.")
        with_body = _content_type(req.header("Content-Type")) == OFFSET_CONTENT_TYPE
        checksum = _parse_checksum(req.header("Upload-Checksum")) if with_body else None
        if with_body and req.content_length and self.chunk_limit and req.content_length > self.chunk_limit:
            raise self._chunk_too_large(req.content_length)

        owner = self.before_create(length, metadata, req.principal) if self.before_create else None
        now = self.clock()
        info = self.staging.create(UploadInfo(
            id=new_upload_id(), length=length, offset=0, metadata=metadata,
            created=now, expires=now + self.expiration, owner=dict(owner or {}),
        ))
        location = f"{req.location_base.rstrip('/')}/{info.id}"
        try:
            with self.staging.lock(info.id, wait=self.lock_wait):
                if with_body and req.body is not None and req.content_length != 0:
                    if length is not None and req.content_length and req.content_length > length:
                        raise self._exceeds_length(info, req.content_length)
                    info, _ = self._receive(info, req, checksum)
                if info.is_finished:
                    self._complete(info)
        except UploadRefused as exc:
            if exc.status == 460:  # nothing usable was stored: do not leave an orphan behind
                self.staging.delete(info.id)
            else:
                exc.headers.setdefault("Location", location)
            raise
        h = self._info_headers(self.staging.load(info.id))
        h["Location"] = location
        return TusResponse(201, h)

    def _check_size(self, length: int) -> None:
        if length > self.max_size:
            raise UploadRefused(413, "file_too_large",
                                f"The file is {length} bytes; the largest upload allowed is "
                                f"{self.max_size} bytes.", {"Tus-Max-Size": str(self.max_size)})

    def _chunk_too_large(self, size: int) -> UploadRefused:
        return UploadRefused(413, "chunk_too_large",
                             f"This request carries {size} bytes; send at most {self.chunk_limit} per request.")

    @staticmethod
    def _exceeds_length(info: UploadInfo, size: int) -> UploadRefused:
        return UploadRefused(413, "exceeds_upload_length",
                             f"{size} bytes at offset {info.offset} would exceed the declared "
                             f"Upload-Length of {info.length} bytes.")

    # PATCH -----------------------------------------------------------------
    def _patch(self, req: TusRequest) -> TusResponse:
        if _content_type(req.header("Content-Type")) != OFFSET_CONTENT_TYPE:
            raise UploadRefused(415, "unsupported_media_type",
                                f"PATCH bodies must be sent as Content-Type: {OFFSET_CONTENT_TYPE}.")
        offset = _parse_int(req.header("Upload-Offset"), "Upload-Offset")
        if offset is None:
            raise UploadRefused(400, "missing_offset", "PATCH requires an Upload-Offset header.")
        checksum = _parse_checksum(req.header("Upload-Checksum"))
        declared_sha256 = _parse_repr_digest(req.header("Repr-Digest"))
        new_length = _parse_int(req.header("Upload-Length"), "Upload-Length")
        size = req.content_length
        if size is not None and self.chunk_limit is not None and size > self.chunk_limit:
            raise self._chunk_too_large(size)

        upload_id = validate_upload_id(req.path_id or "")
        with self.staging.lock(upload_id, wait=self.lock_wait):
            info = self._load(req)
            if offset != info.offset:
                raise UploadRefused(409, "offset_mismatch",
                                    f"Upload-Offset {offset} does not match the server's offset {info.offset}; "
                                    f"send HEAD and resume from the offset it returns.",
                                    {"Upload-Offset": str(info.offset)})
            if new_length is not None:
                if info.length is None:
                    self._check_size(new_length)
                    if new_length < info.offset:
                        raise UploadRefused(400, "invalid_length",
                                            f"Upload-Length {new_length} is below the bytes already received.")
                    info = self.staging.save(info.evolve(length=new_length))
                elif new_length != info.length:
                    raise UploadRefused(400, "invalid_length", "Upload-Length cannot change once set.")
            if declared_sha256 is not None and info.state == ACTIVE:
                info = self._declare_sha256(info, declared_sha256)
            if info.state in HANDOVER_PENDING and not size:  # an empty PATCH at the end: "finish it"
                info = self._hand_over(info)
            if info.state != ACTIVE:  # complete (or completing): nothing more to write
                if size:
                    raise self._exceeds_length(info, size)
                return TusResponse(204, self._info_headers(info))
            if size is not None and info.length is not None and info.offset + size > info.length:
                raise self._exceeds_length(info, size)
            info, missing = self._receive(info, req, checksum)
            if info.is_finished:
                info = self._complete(info)
        h = self._info_headers(info)
        if missing:
            return self._error(400, "incomplete_body",
                               f"The request body ended {missing} bytes early; the bytes received were kept, "
                               f"resume at offset {info.offset}.", h)
        return TusResponse(204, h)

    def _declare_sha256(self, info: UploadInfo, sha256: str) -> UploadInfo:
        """Record the whole-file SHA-256 a client sends with a PATCH (it may hash while sending,
        so it knows the digest only by the last chunk); checked at completion like the metadata one."""
        known = info.metadata.get(SHA256_METADATA_KEY)
        if known is not None:
            if known.lower() != sha256:
                raise UploadRefused(400, "checksum_mismatch",
                                    "Repr-Digest differs from the SHA-256 declared when the upload was created.")
            return info
        return self.staging.save(info.evolve(metadata={**info.metadata, SHA256_METADATA_KEY: sha256}))

    def _receive(self, info: UploadInfo, req: TusRequest,
                 checksum: _Checksum | None) -> tuple[UploadInfo, int]:
        """Stream the body onto the data file; return the new info and how many declared bytes never came.

        Without a per-chunk checksum every received byte is kept (tus servers
        SHOULD keep partial bodies) and progress is checkpointed; with one, the
        chunk is all-or-nothing.
        """
        declared = req.content_length
        limit = (info.length if info.length is not None else self.max_size) - info.offset
        to_read = declared if declared is not None else limit + 1
        key = (str(self.staging.root), info.id)
        hasher = self._hasher_at(key, info)
        # an all-or-nothing chunk must not leave its bytes in the whole-file hash when discarded
        fallback = hasher.copy() if checksum is not None and hasher is not None else None
        chunk_hash = hashlib.new(checksum.algorithm) if checksum else None
        body = req.body
        missing = 0
        since_checkpoint = 0
        # Bodies that say they fill a buffer in place (``prefers_readinto``, see the gunicorn
        # adapter) skip one allocation and copy per block; everything else is read as bytes.
        readinto = getattr(body, "readinto", None) if getattr(body, "prefers_readinto", False) else None
        # Two buffers: block k is hashed (on helper threads) while block k+1 is received into the other.
        views = (aligned_buffer(_BLOCK), aligned_buffer(_BLOCK)) if readinto is not None else None
        hashing = BackgroundHashing(hasher, chunk_hash)
        with self.staging.writer(info) as writer, hashing:
            while to_read > 0 and body is not None:
                try:
                    if views is not None:
                        view = views[hashing.blocks % 2]
                        block = view[:_fill(readinto, view[:writer.next_size(min(_BLOCK, to_read))])]
                    else:
                        block = body.read(min(_BLOCK, to_read))
                except OSError:
                    block = None
                if not block:
                    if declared is not None:
                        missing = to_read
                    break
                if writer.written + len(block) > limit:
                    writer.discard()
                    raise self._exceeds_length(info, writer.written + len(block)) if info.length is not None \
                        else UploadRefused(413, "file_too_large",
                                           f"The upload exceeds the largest size allowed, {self.max_size} bytes.")
                writer.write(block, aligned_memory=views is not None)
                to_read -= len(block)
                hashing.update(block)
                if chunk_hash is not None:
                    continue
                since_checkpoint += len(block)
                if since_checkpoint >= self.checkpoint_bytes and to_read > 0:
                    writer.sync()
                    hashing.wait()
                    info = self._commit(info, writer.start + writer.written, key, hasher)
                    since_checkpoint = 0
            hashing.wait()
            if checksum is not None and chunk_hash is not None:
                if missing:
                    writer.discard()
                    return self._commit(info, info.offset, key, fallback), missing
                if not hmac.compare_digest(chunk_hash.digest(), checksum.digest):
                    writer.discard()
                    if fallback is not None:
                        HASHES.put(key, info.offset, fallback)
                    raise UploadRefused(460, "checksum_mismatch",
                                        f"The {checksum.algorithm} of this chunk does not match Upload-Checksum; "
                                        f"the chunk was discarded, resend it from offset {info.offset}.",
                                        {"Upload-Offset": str(info.offset)})
            writer.sync()
            return self._commit(info, writer.start + writer.written, key, hasher), missing

    def _commit(self, info: UploadInfo, offset: int, key: tuple[str, str], hasher: Any) -> UploadInfo:
        info = self.staging.save(info.evolve(offset=offset, expires=self.clock() + self.expiration))
        if hasher is not None:
            HASHES.put(key, offset, hasher.copy())
        return info

    def _hasher_at(self, key: tuple[str, str], info: UploadInfo) -> Any:
        """A SHA-256 state at exactly ``info.offset``, or None to re-hash from disk at the end.

        A gap (bytes written by another worker) is read back from disk when it
        is small enough to do inside this request.
        """
        entry = HASHES.take(key)
        if entry is None:
            return hashlib.sha256() if info.offset == 0 else None
        hashed, hasher = entry
        if hashed == info.offset:
            return hasher
        if hashed < info.offset and info.offset - hashed <= self.incremental_catchup:
            hash_file_range(hasher, info.data_path, hashed, info.offset)
            return hasher
        if hashed < info.offset:
            HASHES.put(key, hashed, hasher)  # keep it: completion catches up from there
        return None

    # completion ------------------------------------------------------------
    def _final_sha256(self, info: UploadInfo) -> str:
        key = (str(self.staging.root), info.id)
        entry = HASHES.take(key)
        hashed, hasher = entry if entry and entry[0] <= info.offset else (0, hashlib.sha256())
        if hashed < info.offset:
            log.info("upload %s: hashing %d bytes from disk (written by another process)",
                     info.id, info.offset - hashed)
            hash_file_range(hasher, info.data_path, hashed, info.offset)
        return hasher.hexdigest()

    def _complete(self, info: UploadInfo) -> UploadInfo:
        """Verify the whole file, then hand it to the application (see :meth:`_hand_over`)."""
        sha = self._final_sha256(info)
        info = info.evolve(sha256=sha)
        expected = info.metadata.get(SHA256_METADATA_KEY)
        if expected is not None and expected.lower() != sha:
            self._fail(info, "checksum_mismatch",
                       f"The uploaded file's SHA-256 is {sha} but the client declared {expected.lower()}; "
                       f"the file was corrupted on the way or the wrong file was sent. Upload it again.")
        return self._hand_over(info)

    def _hand_over(self, info: UploadInfo) -> UploadInfo:
        """Give the verified file to the application; drop the staged bytes only once it took them.

        Caller holds the upload's lock. A refusal fails the upload; "not now" (a refusal
        with ``retry_after``, or any unexpected error) keeps the bytes as ``storing``.
        """
        info = self.staging.save(info.evolve(state=COMPLETING))
        if self.on_complete is not None:
            try:
                self.on_complete(info)
            except UploadRefused as exc:
                if exc.retry_after is not None:
                    self._defer(info, exc)
                self._fail(info, exc.code, exc.message, exc.status)
            except Exception:
                log.exception("upload %s: on_complete failed; the verified file is kept and retried", info.id)
                self._defer(info, UploadRefused(
                    500, "processing_failed",
                    "The file arrived intact and is kept, but it could not be stored yet; "
                    "the server retries by itself.", retry_after=self.handover_retry_after))
        now = self.clock()
        info = self.staging.save(info.evolve(state=COMPLETE, error=None, completed=now,
                                             expires=now + self.expiration))
        self.staging.discard_data(info.id)
        return info

    def _defer(self, info: UploadInfo, exc: UploadRefused) -> None:
        """Keep the verified bytes for a later hand-over and tell the client when to ask again.

        A ``storing`` upload never expires: its bytes are complete and verified, and
        deleting them would lose the slide (an administrator can still DELETE it).
        """
        self.staging.save(info.evolve(state=STORING, error={"code": exc.code, "message": exc.message},
                                      expires=None))
        log.warning("upload %s: hand-over deferred (%s); the verified file is kept", info.id, exc.code)
        retry_after = exc.retry_after if exc.retry_after is not None else self.handover_retry_after
        headers = {**exc.headers, "Upload-Offset": str(info.offset), "Upload-Error": exc.code}
        raise UploadRefused(exc.status, exc.code, exc.message, headers,
                            details={**exc.details, "retry_after": retry_after}, retry_after=retry_after)

    def _fail(self, info: UploadInfo, code: str, message: str, status: int = 422) -> None:
        now = self.clock()
        info = self.staging.save(info.evolve(state=FAILED, error={"code": code, "message": message},
                                             completed=now, expires=now + self.expiration))
        self.staging.discard_data(info.id)
        if self.on_end is not None:
            try:
                self.on_end(info, "failed")
            except Exception:  # the client must still hear why its upload failed
                log.exception("upload %s: on_end failed", info.id)
        raise UploadRefused(status, code, message,
                            {"Upload-Offset": str(info.offset), "Upload-Error": code})

    def retry_pending(self) -> list[str]:
        """Try the hand-over of every upload waiting for it (``storing``, or ``completing`` left by a
        killed process); return the ids handed over. Run periodically, so an upload completes even
        when its client went away; uploads locked by a request right now are skipped."""
        done: list[str] = []
        for upload_id in list(self.staging.ids()):
            try:
                if self.staging.load(upload_id).state not in HANDOVER_PENDING:
                    continue
                with self.staging.lock(upload_id, wait=0):
                    info = self.staging.load(upload_id)
                    if info.state in HANDOVER_PENDING:
                        self._hand_over(info)
                        done.append(upload_id)
            except (UploadLocked, UploadNotFound):
                continue
            except UploadRefused as exc:
                log.info("upload %s: hand-over still not possible (%s)", upload_id, exc.code)
        return done

    # housekeeping ----------------------------------------------------------
    def cleanup_expired(self, now: dt.datetime | None = None) -> int:
        """Delete uploads whose expiry passed (and stray files); return how many uploads were removed.

        Run it periodically (cron / huey periodic task). Uploads being written
        right now are skipped: their lock is held and their expiry just moved.
        """
        now = now or self.clock()
        removed = 0
        for upload_id in list(self.staging.ids()):
            try:
                with self.staging.lock(upload_id, wait=0):
                    info = self.staging.load(upload_id)
                    if info.expires is None or info.expires > now:
                        continue
                    if info.state in HANDOVER_PENDING:
                        continue  # verified bytes waiting for storage: retry_pending's, never swept
                    if self.on_end is not None and info.state == ACTIVE:
                        try:
                            self.on_end(info, "expired")
                        except Exception:  # the row is released by its own expiry later
                            log.exception("upload %s: on_end failed", upload_id)
                    self.staging.delete(upload_id)
                    removed += 1
            except (UploadLocked, UploadNotFound):
                continue
            HASHES.drop((str(self.staging.root), upload_id))
        self.staging.remove_strays(older_than=(now - dt.timedelta(hours=1)).timestamp())
        return removed
