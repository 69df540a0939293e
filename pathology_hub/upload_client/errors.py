"""The upload client's user-facing errors: one clear reason per file that could not be sent.

Shared by the transport (a file modified while sent), the platform API (refusals, duplicates)
and the watcher, which reports them line by line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
