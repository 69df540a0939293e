"""Uploading from scanner workstations: the tus client side (tuspy), no Flask.

Resumable by design: tuspy keeps each file's upload URL in a small state file
(keyed by a fingerprint of the file), so a run interrupted by a dropped network
or a reboot continues from the server's offset the next time it is started.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import requests
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from storage.verify import file_sha256

log = logging.getLogger("pathology_hub.upload")
DEFAULT_CHUNK = 8 * 1024 * 1024


class UploadError(Exception):
    """A clear, user-facing reason why a file could not be uploaded."""


@dataclass
class UploadResult:
    path: Path
    case_number: str
    url: str
    sha256: str


def sha256_of(path: Path) -> str:
    return file_sha256(path)


class HubUploader:
    def __init__(self, server: str, token: str, state_file: Path, *, chunk_size: int = DEFAULT_CHUNK,
                 retries: int = 20, retry_delay: int = 5) -> None:
        if not token:
            raise UploadError("An API token is needed (flask users token NAME, then --token or PATHOLOGY_HUB_TOKEN).")
        self.server = server.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.state_file = Path(state_file)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size
        self.retries = retries
        self.retry_delay = retry_delay

    def case_id(self, case_number: str) -> int:
        try:
            resp = requests.get(f"{self.server}/api/v1/cases", params={"q": case_number}, headers=self.headers,
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

    def upload(self, path: Path, case_number: str, *, stain: str = "H&E") -> UploadResult:
        path = Path(path)
        if not path.is_file():
            raise UploadError(f"{path} is not a file.")
        case_id = self.case_id(case_number)
        digest = sha256_of(path)
        client = tus_client.TusClient(f"{self.server}/api/v1/uploads/", headers=self.headers)
        uploader = client.uploader(
            file_path=str(path), chunk_size=self.chunk_size, retries=self.retries, retry_delay=self.retry_delay,
            store_url=True, url_storage=FileStorage(str(self.state_file)), upload_checksum=True,
            metadata={"filename": path.name, "case_id": str(case_id), "stain": stain, "sha256": digest})
        try:
            uploader.upload()
        except Exception as exc:  # tuspy raises TusCommunicationError / TusUploadFailed with the response
            response = getattr(exc, "response_content", None)
            detail = _json_message(response) if response else str(exc)
            raise UploadError(f"{path.name}: {detail}") from exc
        log.info("uploaded", extra={"file": path.name, "case_id": case_id, "bytes": path.stat().st_size})
        return UploadResult(path=path, case_number=case_number, url=uploader.url, sha256=digest)


def _json_message(raw: bytes | str) -> str:
    try:
        return json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


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


def watch(uploader: HubUploader, folder: Path, pattern: str, *, settle: float = 10.0, interval: float = 2.0,
          once: bool = False, stain: str = "H&E", echo: Callable[[str], None] = print) -> list[UploadResult]:
    folder = Path(folder)
    regex = re.compile(pattern)
    done_file = folder / ".pathology-hub-done.json"
    done: dict[str, str] = json.loads(done_file.read_text()) if done_file.exists() else {}
    seen: dict[str, tuple[int, float, float]] = {}
    results: list[UploadResult] = []
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
            except UploadError as exc:
                echo(f"error: {exc}")
                continue
            results.append(result)
            done[key] = result.sha256
            done_file.write_text(json.dumps(done, indent=1))
            echo(f"uploaded {path.name} to case {case_number} (sha256 {result.sha256[:12]}…)")
        if once:
            return results
        time.sleep(interval)
