"""Watching a scanner's output folder: files that stopped growing, named after a case, are uploaded
once each (remembered in ``.pathology-hub-done.json``), with one line per file for the CLI.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Callable, Iterator

from pathology_hub.upload_client.api import HubUploader, UploadResult, Verdict
from pathology_hub.upload_client.errors import DuplicateSlide, UploadError

log = logging.getLogger("pathology_hub.upload")


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
