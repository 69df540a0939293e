"""The refusals of annotation edits that carry more than a message (the current annotation,
a 428 status), kept apart so the web layer can map them without importing the writes.
"""

from __future__ import annotations

from pathology_hub.domain.errors import Conflict, DomainError
from pathology_hub.models import Annotation


class VersionConflict(Conflict):
    """The annotation changed since the client read it; ``current`` is what is stored now."""

    code = "version_conflict"

    def __init__(self, current: Annotation) -> None:
        super().__init__("The annotation was changed by someone else (now version %(version)s); "
                         "reload it and apply your change again.", params={"version": current.version})
        self.current = current


class VersionRequired(DomainError):
    status = 428
    code = "version_required"
