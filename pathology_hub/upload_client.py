"""Uploading from scanner workstations: the tus client side (tuspy), no Flask.

Resumable by design: the upload URL of every file in flight is kept in a small
state file (tuspy's ``FileStorage``), so a run interrupted by a dropped network
or a reboot continues from the server's offset the next time it is started.

Fast by design: tuspy's own ``Uploader`` reads a chunk, checksums it and only
then sends it, so disk and hashing time add to network time. Here the next
chunk is read and checksummed in a background thread while the current one is
on the wire (two reused buffers, sent as ``memoryview`` without a copy), and
one keep-alive ``requests.Session`` carries every request. The tus protocol
itself (creation, offsets, ``Upload-Checksum``, retries from the server's
offset) stays tuspy's: :class:`PipelinedUploader` subclasses its ``Uploader``.

Integrity end to end: the whole-file SHA-256 is computed by the reader thread
from the chunks as they are read, and declared with the last chunk in a
``Repr-Digest`` header (RFC 9530, as the IETF resumable-uploads draft uses it);
the server verifies it *before* it hands the file to the application. Each
chunk also carries a SHA-1 ``Upload-Checksum`` that the server checks before
it keeps the chunk (a corrupted chunk is discarded and resent). Hashing while
sending, instead of in a pass before the first byte, saved a quarter of the
upload time on loopback (bench/upload.py). A resumed upload reads back the
bytes an earlier run sent, once, to continue the hash; a file modified during
the upload is refused before its last chunk.

Outages: a server that answers "not now" (503 or 423 with ``Retry-After``: e.g. every byte
arrived but object storage is down, so the server keeps the file and stores it later) is waited
out as told for up to ``storage_wait`` seconds, without counting as failed attempts; the client
then resumes with HEAD, so no byte the server already has is sent again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator
from urllib.parse import urljoin

import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.fingerprint import interface as fingerprint_interface
from tusclient.request import TusRequest
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

log = logging.getLogger("pathology_hub.upload")

#: Bytes per PATCH request. Why 32 MiB: every chunk costs a request, a lock,
#: a commit and an fsync on the server and a round trip the client waits for;
#: on loopback (bench/upload.py, 512 MiB) 4 MiB chunks ran at ~150 MiB/s,
#: 8 MiB at ~170, 32 MiB at ~217, and 16-128 MiB alike within noise. But with
#: ``Upload-Checksum`` a chunk is all-or-nothing: a connection that drops
#: mid-chunk loses that whole chunk, and resuming resends it. On a weak link
#: (10 Mbit/s: ~27 s per 32 MiB) pass a smaller ``--chunk-size``. Memory use is
#: two chunk buffers.
DEFAULT_CHUNK = 32 * 1024 * 1024
#: Per-chunk ``Upload-Checksum`` algorithm (tuspy's choice; the server accepts
#: sha1, sha256, sha512, md5). SHA-1 is as fast as SHA-256 with SHA-NI and
#: faster without it; it guards each chunk against transport corruption, the
#: whole-file SHA-256 guards the result.
CHUNK_CHECKSUM = "sha1"
#: Statuses that a retry cannot fix (bad token, upload gone or failed, too big):
#: report them at once instead of retrying ``retries`` times.
_PERMANENT = frozenset({401, 403, 404, 410, 412, 413, 415, 422})
#: "Not now" answers: the server keeps what it has (e.g. every byte arrived and object storage is
#: down, or another request is storing the file) and says when to ask again (Retry-After). They are
#: waited out, not counted as failed attempts, for up to ``storage_wait`` seconds in a row.
_NOT_NOW = frozenset({423, 503})
_MAX_RETRY_AFTER = 120.0
_HASH_BLOCK = 8 << 20


class UploadError(Exception):
    """A clear, user-facing reason why a file could not be uploaded."""


class DuplicateSlide(UploadError):
    """The file is already a slide of the case; nothing was sent."""

    def __init__(self, path: Path, case_number: str, slides: list[dict[str, Any]], server: str) -> None:
        first = slides[0]
        link = f"{server}/cases/{first.get('case_id')}#slide-{first.get('id')}"
        labels = ", ".join(str(s.get("label")) for s in slides)
        super().__init__(f"{Path(path).name} is already slide {labels} of case {case_number} ({link}); "
                         "it was not sent again. Use --allow-duplicate to attach it again on purpose.")
        self.slides = slides
        self.link = link


@dataclass
class UploadResult:
    path: Path
    case_number: str
    url: str
    sha256: str


#: Verdict statuses of ``GET /api/v1/upload-status/<id>``: the server took the file as a slide
#: (it may still be tiling), or refused it after inspection / failed processing it.
ACCEPTED = frozenset({"ready", "tiling"})
REFUSED = frozenset({"rejected", "failed"})


@dataclass
class Verdict:
    """What the server made of an uploaded file.

    ``status``: "ready" or "tiling" (accepted), "rejected" or "failed" (with the server's
    ``code`` and ``message``), or "pending" when no verdict came within the wait."""

    status: str
    code: str = ""
    message: str = ""
    slide_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED

    @property
    def refused(self) -> bool:
        return self.status in REFUSED


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


# ---------------------------------------------------------------- pipelined tus client
@dataclass
class _Chunk:
    index: int
    offset: int
    view: memoryview
    digest: bytes | None


class ChunkReader:
    """Reads (and checksums) chunk N+1 in a background thread while chunk N is being sent.

    Two reused buffers: the one handed out by :meth:`get` stays untouched until
    the next :meth:`get`, the other receives the prefetch. All file access
    happens on the one reader thread, so seek+read needs no lock (and works on
    Windows, which has no ``pread``).
    """

    def __init__(self, stream: IO[bytes], algorithm: str | None, *, prefetch: bool = True,
                 known: dict[int, tuple[int, bytes]] | None = None) -> None:
        self._stream = stream
        self._algorithm = algorithm
        self._prefetch = prefetch
        self._known = known or {}
        self._buffers: list[bytearray] = [bytearray(), bytearray()]
        self._in_use = 1
        # Whole-file SHA-256 of bytes [0, _whole_at), built from the chunks as they are read;
        # the state at every chunk start is kept, so a chunk sent again after a failure is not
        # hashed twice, and bytes sent by an earlier run are read back once when resuming.
        self._whole = hashlib.sha256()
        self._whole_at = 0
        self._states: dict[int, Any] = {}
        self._pending: tuple[int, int, Future[_Chunk]] | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tus-read")

    def _hash_up_to(self, offset: int, view: memoryview) -> None:
        """Bring the whole-file hash to ``offset`` (re-using ``view`` as scratch for a read-back)."""
        if offset < self._whole_at:
            state = self._states.get(offset)
            self._whole, self._whole_at = (state.copy(), offset) if state is not None else (hashlib.sha256(), 0)
        while self._whole_at < offset:
            self._stream.seek(self._whole_at)
            n = self._stream.readinto(view[:min(len(view), offset - self._whole_at)])
            if not n:
                raise UploadError(f"the file ended at byte {self._whole_at}, before the {offset} bytes "
                                  f"already uploaded; was it changed or truncated?")
            self._whole.update(view[:n])
            self._whole_at += n

    def sha256_through(self, end: int) -> str | None:
        """The whole-file SHA-256 if the bytes read so far are exactly [0, end), else None."""
        return self._whole.hexdigest() if self._whole_at == end else None

    def _read(self, index: int, offset: int, length: int) -> _Chunk:
        if len(self._buffers[index]) < length:
            self._buffers[index] = bytearray(length)  # replaced, never resized: old views stay valid
        view = memoryview(self._buffers[index])[:length]
        self._hash_up_to(offset, view)  # before the chunk is read: the buffer is its scratch
        self._stream.seek(offset)
        got = 0
        while got < length:
            n = self._stream.readinto(view[got:])
            if not n:
                raise UploadError(f"the file ended at byte {offset + got}, before the {offset + length} "
                                  f"bytes it had when the upload started; was it changed or truncated?")
            got += n
        if offset == self._whole_at:
            self._states[offset] = self._whole.copy()
            self._whole.update(view)
            self._whole_at = offset + length
        digest = None
        if self._algorithm:
            known = self._known.get(offset)
            digest = known[1] if known and known[0] == length else hashlib.new(self._algorithm, view).digest()
        return _Chunk(index, offset, view, digest)

    def get(self, offset: int, length: int, *, fresh: bool = False) -> _Chunk:
        """The chunk at ``offset``: the prefetched one if it matches, else read now (``fresh`` forces a re-read)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            wait([pending[2]])
            if pending[:2] == (offset, length) and not fresh:
                chunk = pending[2].result()
                self._in_use = chunk.index
                return chunk
        chunk = self._pool.submit(self._read, 1 - self._in_use, offset, length).result()
        self._in_use = chunk.index
        return chunk

    def prefetch(self, offset: int, length: int) -> None:
        """Start reading the next chunk into the buffer not handed out by :meth:`get`."""
        if self._prefetch and self._pending is None and length > 0:
            self._pending = (offset, length, self._pool.submit(self._read, 1 - self._in_use, offset, length))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._buffers = []


class _PipelinedRequest(TusRequest):
    """tuspy's PATCH request, taking its chunk (and checksum) from the uploader's :class:`ChunkReader`."""

    def __init__(self, uploader: "PipelinedUploader") -> None:
        super().__init__(uploader)
        self._uploader = uploader

    def perform(self) -> None:
        up = self._uploader
        assert up.reader is not None
        offset = int(self._request_headers["upload-offset"])
        # after a failed attempt re-read from disk: never resend a buffer the server refused
        chunk = up.reader.get(offset, self._content_length, fresh=up._retried > 0)
        if self._upload_checksum and chunk.digest is not None:
            self._request_headers["upload-checksum"] = (
                f"{self._checksum_algorithm_name} {base64.b64encode(chunk.digest).decode('ascii')}")
        following = offset + self._content_length
        if following == up.file_size:
            # The reader hashed every byte on the way: the server checks the whole file against it.
            # Bytes changed after they were sent would be in that hash too, so a file modified
            # during the upload is refused here, before the last chunk could complete it.
            whole = up.reader.sha256_through(following)
            if whole is None or (up.file_path and os.stat(up.file_path).st_mtime_ns != up.file_mtime_ns):
                raise UploadError("the file was modified while it was being uploaded; upload it again.")
            up.sent_sha256 = whole
            self._request_headers["repr-digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(whole)).decode()}:"
        up.reader.prefetch(following, min(up.chunk_size, up.stop_at - following))
        try:
            # a memoryview body goes to socket.sendall() as it is: no copy, no 16 KiB blocks
            resp = up.session.patch(self._url, data=chunk.view, headers=self._request_headers,
                                    verify=self.verify_tls_cert, cert=self.client_cert, timeout=up.timeout)
            self.status_code = resp.status_code
            self.response_content = resp.content
            self.response_headers = {k.lower(): v for k, v in resp.headers.items()}
        except requests.exceptions.RequestException as error:
            raise TusUploadFailed(error) from error


class PipelinedUploader(Uploader):
    """tuspy's :class:`Uploader`, reading (and if need be checksumming) the next chunk while this one is sent.

    Everything protocol-related (creating the upload, offsets, retrying from
    the offset the server reports, URL storage for resuming) is tuspy's; this
    class changes where the chunk bytes come from, sends them over one
    keep-alive session, and does not retry errors that cannot succeed.
    """

    CHECKSUM_ALGORITHM_PAIR = (CHUNK_CHECKSUM, getattr(hashlib, CHUNK_CHECKSUM))

    def __init__(self, *args: Any, session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (30, 300),
                 chunk_digests: dict[int, tuple[int, bytes]] | None = None,
                 storage_wait: float = 3600.0, **kwargs: Any) -> None:
        # set before tuspy's __init__, which may already ask the server for the offset
        self.session = session or requests.Session()
        self.timeout = timeout
        self.storage_wait = storage_wait
        self.not_now_waits = 0  # how often the server said "not now" (for logs and tests)
        self._not_now_since: float | None = None
        self.chunk_digests = chunk_digests  # from hash_file(): {offset: (length, digest)}
        self.reader: ChunkReader | None = None
        self.sent_sha256: str | None = None  # declared with the last chunk (Repr-Digest)
        super().__init__(*args, **kwargs)
        self.file_size = self.get_file_size()
        self.file_mtime_ns = os.stat(self.file_path).st_mtime_ns if self.file_path else None

    @contextmanager
    def _reading(self) -> Iterator[None]:
        if self.reader is not None:
            yield
            return
        # A caller's file_stream is also seeked by tuspy on this thread, so it is not read ahead.
        own = self.file_stream is None
        stream = open(self.file_path, "rb") if own else self.file_stream
        self.reader = ChunkReader(stream, self.checksum_algorithm_name if self.upload_checksum else None,
                                  prefetch=own, known=self.chunk_digests)
        try:
            yield
        finally:
            self.reader.close()
            self.reader = None
            if own:
                stream.close()

    def upload(self, stop_at: int | None = None) -> None:
        with self._reading():
            super().upload(stop_at)

    def upload_chunk(self) -> None:
        with self._reading():
            super().upload_chunk()

    def _not_now(self, status: int, headers: Any, what: str) -> bool:
        """Wait as told if ``status`` means "not now" and the wait horizon is not used up."""
        if status not in _NOT_NOW:
            return False
        now = time.monotonic()
        if self._not_now_since is None:
            self._not_now_since = now
        if now - self._not_now_since > self.storage_wait:
            return False
        try:
            seconds = float(headers.get("retry-after"))
        except (TypeError, ValueError):
            seconds = float(getattr(self, "retry_delay", 0) or 5)
        seconds = min(max(seconds, 0.2), _MAX_RETRY_AFTER)
        log.warning("upload %s: %s answered %s (the server keeps what it received); asking again in %.0f s",
                    self.url, what, status, seconds)
        self.not_now_waits += 1
        time.sleep(seconds)
        return True

    def _do_request(self) -> None:
        while True:
            self.request = _PipelinedRequest(self)
            if self.file_stream is None:
                self.request.file.close()  # tuspy opens the file for every request; the reader has its own
            try:
                self.request.perform()
                status = self.request.status_code
                if 200 <= status < 300:
                    self._not_now_since = None
                    return
                if self._not_now(status, self.request.response_headers, "PATCH"):
                    # e.g. the last chunk arrived but storage was down: HEAD says where we stand
                    # (once stored: at the end, so the next PATCH is empty and only confirms it)
                    self.offset = self.get_offset()
                    continue
                raise TusUploadFailed("", status, self.request.response_content)
            except TusUploadFailed as error:
                self._retry_or_cry(error)
                return

    def _retry_or_cry(self, error: TusCommunicationError) -> None:
        if getattr(error, "status_code", None) in _PERMANENT:
            raise error
        if self.retries > self._retried:
            log.warning("upload %s: %s; retrying from the server's offset", self.url, error)
        super()._retry_or_cry(error)

    def get_offset(self) -> int:
        while True:
            try:
                resp = self.session.head(self.url, headers=self.get_headers(), verify=self.verify_tls_cert,
                                         cert=self.client_cert, timeout=self.timeout)
            except requests.exceptions.RequestException as error:
                raise TusCommunicationError(error) from error
            offset = resp.headers.get("upload-offset")
            if offset is not None and 200 <= resp.status_code < 300:
                self._not_now_since = None
                return int(offset)
            if self._not_now(resp.status_code, resp.headers, "HEAD"):
                continue
            raise TusCommunicationError(f"Attempt to retrieve offset fails with status {resp.status_code}",
                                        resp.status_code, resp.content)

    def create_url(self) -> str:
        try:
            resp = self.session.post(self.client.url, headers=self.get_url_creation_headers(),
                                     verify=self.verify_tls_cert, cert=self.client_cert, timeout=self.timeout)
        except requests.exceptions.RequestException as error:
            raise TusCommunicationError(error) from error
        url = resp.headers.get("location")
        if url is None:
            raise TusCommunicationError(f"Attempt to retrieve create file url with status {resp.status_code}",
                                        resp.status_code, resp.content)
        return urljoin(self.client.url, url)


class _ContentKey(fingerprint_interface.Fingerprint):
    """Resume key: endpoint + metadata + the file's identity (see :meth:`HubUploader.resume_key`).

    So an interrupted upload is only ever continued from the same file, for the same
    case; if its bytes changed anyway, the whole-file SHA-256 check rejects the result.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def get_fingerprint(self, fs: IO) -> str:
        return self.key


class HubUploader:
    """Uploads slide files to one Pathology Hub server with an API token."""

    def __init__(self, server: str, token: str, state_file: Path, *, chunk_size: int = DEFAULT_CHUNK,
                 retries: int = 20, retry_delay: int = 5, timeout: float | tuple[float, float] = (30, 300),
                 storage_wait: float = 3600.0) -> None:
        if not token:
            raise UploadError("An API token is needed (flask users token NAME, then --token or PATHOLOGY_HUB_TOKEN).")
        if chunk_size <= 0:
            raise UploadError("The chunk size must be at least 1 MiB.")
        self.server = server.rstrip("/")
        self.endpoint = f"{self.server}/api/v1/uploads/"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.state_file = Path(state_file)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.storage_wait = storage_wait  # how long to wait out "storage down, retry later" answers
        self.session = requests.Session()  # keep-alive: one connection (and server worker) for all chunks

    def case_id(self, case_number: str) -> int:
        try:
            resp = self.session.get(f"{self.server}/api/v1/cases", params={"q": case_number}, headers=self.headers,
                                    timeout=30)
        except requests.RequestException as exc:
            raise UploadError(f"The server {self.server} cannot be reached ({type(exc).__name__}).") from exc
        if resp.status_code == 401:
            raise UploadError("The API token was refused (expired, revoked or mistyped).")
        if resp.status_code != 200:
            raise UploadError(_error_message(resp))
        matches = [c for c in resp.json()["cases"] if c["case_number"] == case_number]
        if not matches:
            raise UploadError(f"No case {case_number} at your centre; create it first.")
        return int(matches[0]["id"])

    def upload(self, path: Path, case_number: str, *, stain: str = "H&E",
               allow_duplicate: bool = False) -> UploadResult:
        """Send one file to a case; a file that is already a slide of the case is not sent
        (DuplicateSlide) unless ``allow_duplicate`` says attaching it again is deliberate."""
        path = Path(path)
        if not path.is_file():
            raise UploadError(f"{path} is not a file.")
        case_id = self.case_id(case_number)
        metadata = {"filename": path.name, "case_id": str(case_id), "stain": stain}
        if allow_duplicate:
            metadata["allow_duplicate"] = "1"
        else:
            same = self.same_file_slides(path, case_id)
            if same:
                raise DuplicateSlide(path, case_number, same, self.server)
        url, digest = self.send(path, metadata)
        log.info("uploaded", extra={"file": path.name, "case_id": case_id, "bytes": path.stat().st_size})
        return UploadResult(path=path, case_number=case_number, url=url, sha256=digest)

    def same_file_slides(self, path: Path, case_id: int) -> list[dict[str, Any]]:
        """Slides of the case whose original is this very file (same SHA-256).

        The file is hashed only when a slide of the same size exists, so the usual case
        (a new file) costs one small request and no extra pass over a multi-GB file."""
        try:
            resp = self.session.get(f"{self.server}/api/v1/cases/{case_id}/slides", headers=self.headers, timeout=30)
        except requests.RequestException as exc:
            raise UploadError(f"The server {self.server} cannot be reached ({type(exc).__name__}).") from exc
        if resp.status_code != 200:
            raise UploadError(_error_message(resp))
        size = path.stat().st_size
        candidates = [s for s in resp.json().get("slides", []) if s.get("size") == size and s.get("sha256")]
        if not candidates:
            return []
        digest = sha256_of(path)
        return [s for s in candidates if s["sha256"] == digest]

    def verdict(self, upload_url: str, *, timeout: float = 600.0, interval: float = 1.0,
                clock: Callable[[], float] = time.monotonic) -> Verdict:
        """Wait (at most ``timeout`` seconds) until the server has inspected the uploaded file.

        The bytes arriving is not the server accepting them: inspection (format, readability,
        sandboxed probe) runs as a background job after the last chunk, and a file can be
        rejected then.  Polls ``/api/v1/upload-status/<id>``; "pending" when time runs out."""
        upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
        url = f"{self.server}/api/v1/upload-status/{upload_id}"
        deadline = clock() + max(0.0, timeout)
        delay = min(interval, 0.25)
        while True:
            try:
                resp = self.session.get(url, headers=self.headers, timeout=30)
            except requests.RequestException as exc:
                raise UploadError(f"The server {self.server} cannot be reached ({type(exc).__name__}).") from exc
            if resp.status_code != 200:
                code, message = _json_error(resp.content)
                raise UploadError(f"{code}: {message}" if code else message or f"HTTP {resp.status_code}")
            body = resp.json()
            status = body.get("status", "")
            error = body.get("error") or {}
            if status in REFUSED:
                return Verdict(status, str(error.get("code") or status), str(error.get("message") or ""),
                               body.get("slide_id"))
            slide_status = body.get("slide_status")
            if status in ACCEPTED or slide_status in ACCEPTED:
                return Verdict(slide_status if slide_status in ACCEPTED else status, slide_id=body.get("slide_id"))
            if clock() >= deadline:
                return Verdict("pending", slide_id=body.get("slide_id"))
            time.sleep(max(0.0, min(delay, deadline - clock())))
            delay = min(delay * 2, interval)

    def send(self, path: Path, metadata: dict[str, str]) -> tuple[str, str]:
        """Upload one file with ``metadata``; return (upload URL, SHA-256).

        The SHA-256 is computed from the chunks as they are sent and declared with
        the last one (``Repr-Digest``); the server completes the upload only if its own
        digest matches. Continues an earlier, interrupted upload of the same file with
        the same metadata to the same server if the state file knows one.
        """
        path = Path(path)
        try:
            path.stat()
        except OSError as exc:
            raise UploadError(f"{path.name} cannot be read ({exc.strerror or exc}).") from exc
        key = _ContentKey(self.resume_key(path, metadata))
        storage = FileStorage(str(self.state_file))
        try:
            uploader = self._uploader(path, metadata, key, storage)
            uploader.upload()
            storage.remove_item(key.key)  # done: a later upload of the same file is a new upload
            # None when an earlier run had already sent every byte (the server verified them then)
            return uploader.url, uploader.sent_sha256 or sha256_of(path)
        except TusCommunicationError as exc:  # TusUploadFailed too: carries the server's JSON error
            raise UploadError(f"{path.name}: {_failure(exc)}") from exc
        except (UploadError, OSError) as exc:  # the file changed or became unreadable while being sent
            raise UploadError(f"{path.name}: {exc}") from exc
        finally:
            storage.close()

    def resume_key(self, path: Path, metadata: dict[str, str]) -> str:
        """State-file key of an upload: same server, same metadata, same file (path, size, inode and
        modification time, as tus-js-client's fingerprint); changed bytes fail the SHA-256 check anyway."""
        st = Path(path).stat()
        return json.dumps({"endpoint": self.endpoint, "metadata": metadata,
                           "file": [str(Path(path).resolve()), st.st_size, st.st_ino, st.st_mtime_ns]},
                          sort_keys=True)

    def _uploader(self, path: Path, metadata: dict[str, str], key: _ContentKey,
                  storage: FileStorage) -> PipelinedUploader:
        client = tus_client.TusClient(self.endpoint, headers=self.headers)

        def make() -> PipelinedUploader:
            return PipelinedUploader(
                file_path=str(path), client=client, chunk_size=self.chunk_size, retries=self.retries,
                retry_delay=self.retry_delay, store_url=True, url_storage=storage, fingerprinter=key,
                upload_checksum=True, metadata=metadata, session=self.session, timeout=self.timeout,
                storage_wait=self.storage_wait)

        try:
            return make()
        except TusCommunicationError as exc:
            if exc.status_code not in (404, 410):
                raise
            # the remembered upload expired or was cancelled on the server: start a new one
            log.info("upload for %s is gone on the server (%s); starting again", path.name, exc.status_code)
            storage.remove_item(key.key)
            return make()


def _failure(exc: TusCommunicationError) -> str:
    if exc.response_content:
        return _json_message(exc.response_content)
    return str(exc) or f"HTTP {exc.status_code}"


def _json_message(raw: bytes | str) -> str:
    code, message = _json_error(raw)
    return f"{message} ({code})" if code and message else message


def _json_error(raw: bytes | str) -> tuple[str, str]:
    """(code, message) of the server's ``{"error": {"code", "message"}}``; ("", raw text) otherwise."""
    try:
        error = json.loads(raw)["error"]
        return str(error.get("code") or ""), str(error["message"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _error_message(resp: requests.Response) -> str:
    return _json_message(resp.content) or f"HTTP {resp.status_code}"


# ---------------------------------------------------------------- watch folder
def case_number_from(name: str, pattern: re.Pattern[str]) -> str | None:
    match = pattern.search(name)
    if not match:
        return None
    return match.groupdict().get("case") or (match.group(1) if match.groups() else match.group(0))


def settled_files(folder: Path, seen: dict[str, tuple[int, float, float]], settle: float,
                  now: Callable[[], float] = time.monotonic) -> Iterator[Path]:
    """Files whose size and mtime have not changed for ``settle`` seconds (the scanner finished)."""
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        st = path.stat()
        previous = seen.get(path.name)
        if previous is None or previous[:2] != (st.st_size, st.st_mtime):
            seen[path.name] = (st.st_size, st.st_mtime, now())
            if settle > 0:
                continue
        if now() - seen[path.name][2] >= settle:
            yield path


def describe(path: Path, case_number: str, result: UploadResult, verdict: Verdict | None) -> str:
    """One line per file for the CLI: accepted, rejected with the server's code and message, or pending."""
    sent = f"{path.name} to case {case_number} (sha256 {result.sha256[:12]}…)"
    if verdict is None:
        return f"uploaded {sent}; not waiting for the inspection"
    if verdict.accepted:
        return f"uploaded {sent}: accepted ({verdict.status})"
    if verdict.refused:
        return f"rejected {sent}: {verdict.code}: {verdict.message}".rstrip(": ")
    return f"uploaded {sent}: no verdict yet (still being inspected); check the case page later"


def watch(uploader: HubUploader, folder: Path, pattern: str, *, settle: float = 10.0, interval: float = 2.0,
          once: bool = False, stain: str = "H&E", echo: Callable[[str], None] = print,
          wait: float | None = 600.0) -> list[tuple[UploadResult, Verdict | None]]:
    """Upload every settled file named after a case; with ``wait`` (seconds), wait for each verdict.

    A rejected file is logged with the server's code and message and remembered, so it is
    not sent again; the watch goes on with the next file."""
    folder = Path(folder)
    regex = re.compile(pattern)
    done_file = folder / ".pathology-hub-done.json"
    done: dict[str, str] = json.loads(done_file.read_text()) if done_file.exists() else {}
    seen: dict[str, tuple[int, float, float]] = {}
    results: list[tuple[UploadResult, Verdict | None]] = []
    while True:
        for path in settled_files(folder, seen, 0 if once else settle):
            key = f"{path.name}:{path.stat().st_size}"
            if key in done:
                continue
            case_number = case_number_from(path.name, regex)
            if case_number is None:
                echo(f"skipped {path.name}: its name does not match {pattern}")
                done[key] = "skipped"
                continue
            try:
                result = uploader.upload(path, case_number, stain=stain)
                verdict = uploader.verdict(result.url, timeout=wait) if wait is not None else None
            except DuplicateSlide as exc:  # logged once, not sent again on every scan of the folder
                echo(f"warning: {exc}")
                done[key] = "duplicate"
                done_file.write_text(json.dumps(done, indent=1))
                continue
            except UploadError as exc:
                echo(f"error: {exc}")
                continue
            results.append((result, verdict))
            done[key] = f"rejected:{verdict.code}" if verdict is not None and verdict.refused else result.sha256
            done_file.write_text(json.dumps(done, indent=1))
            line = describe(path, case_number, result, verdict)
            if verdict is not None and verdict.refused:
                log.warning("upload rejected", extra={"file": path.name, "error_code": verdict.code})
            echo(line)
        if once:
            return results
        time.sleep(interval)
