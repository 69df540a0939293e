"""The tus transport (tuspy underneath): chunks read and checksummed in a background thread while
the previous one is on the wire, the whole-file SHA-256 declared with the last chunk, and "not
now" answers (503/423 with ``Retry-After``) waited out without counting as failures.

See the package docstring for why; the platform's endpoints are :mod:`.api`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, Iterator
from urllib.parse import urljoin

import requests
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.fingerprint import interface as fingerprint_interface
from tusclient.request import TusRequest
from tusclient.uploader import Uploader

from pathology_hub.upload_client.errors import UploadError

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
