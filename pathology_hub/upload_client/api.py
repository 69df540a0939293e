"""The platform's API as the upload client uses it: case lookup, duplicate check, sending one file
through the tus transport with a resumable state file, and waiting for the server's verdict.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage

from pathology_hub.upload_client.errors import DuplicateSlide, UploadError
from pathology_hub.upload_client.hashing import sha256_of
from pathology_hub.upload_client.transport import DEFAULT_CHUNK, PipelinedUploader, _ContentKey

log = logging.getLogger("pathology_hub.upload")


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


class HubUploader:
    """Uploads slide files to one Pathology Hub server with an API token."""

    def __init__(self, server: str, token: str, state_file: Path, *, chunk_size: int = DEFAULT_CHUNK,
                 retries: int = 20, retry_delay: int = 5, timeout: float | tuple[float, float] = (30, 300),
                 storage_wait: float = 3600.0, preview: bool = True) -> None:
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
        self.preview = preview  # send the coarse levels first (send_preview)
        self.last_preview: dict[str, Any] | None = None
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
            if self.preview and uploader.url is None:
                # create the upload now, so its preview can go first (a resumed upload sent it before)
                uploader.set_url(uploader.create_url())
                uploader.offset = 0
                self.send_preview(path, uploader.url)
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

    def send_preview(self, path: Path, upload_url: str) -> dict[str, Any] | None:
        """Build and send the slide's coarse levels for the upload at ``upload_url``; the slide can be
        opened at low magnification from then on.  Best effort: a file OpenSlide cannot read, or a
        refusal, is logged and the upload goes on (the original is what counts)."""
        from pathology_hub.upload_client.preview import build_preview
        started = time.monotonic()
        try:
            preview = build_preview(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: no preview, the upload still goes
            log.info("no preview for %s (%s)", path.name, type(exc).__name__)
            return None
        try:
            resp = self.session.post(f"{upload_url.rstrip('/')}/preview", params=preview.query(), data=preview.pack,
                                     headers={**self.headers, "Content-Type": "application/octet-stream"},
                                     timeout=self.timeout)
        except requests.RequestException as exc:
            log.warning("preview of %s not sent (%s)", path.name, type(exc).__name__)
            return None
        if resp.status_code != 201:
            log.warning("preview of %s refused: %s", path.name, _error_message(resp))
            return None
        body = resp.json()
        log.info("preview sent", extra={"file": path.name, "bytes": len(preview.pack), "tiles": preview.tiles,
                                        "seconds": round(time.monotonic() - started, 2)})
        self.last_preview = {**body, "bytes": len(preview.pack), "tiles": preview.tiles}
        return self.last_preview

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
