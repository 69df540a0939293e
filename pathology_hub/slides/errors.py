"""Why an upload was refused, in a form both machines and people can read.

The ``code`` is a stable identifier the web layer and API clients branch on;
the ``message`` is shown to the technician. Messages never contain file names
or paths, because those often carry patient names or accession numbers.
"""

from __future__ import annotations

NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
CORRUPT_IMAGE = "corrupt_image"
TRUNCATED_FILE = "truncated_file"
PROBE_CRASHED = "probe_crashed"
PROBE_TIMEOUT = "probe_timeout"
PROBE_OUT_OF_MEMORY = "probe_out_of_memory"
TOO_MANY_PIXELS = "too_many_pixels"
UNSAFE_ARCHIVE = "unsafe_archive"
ARCHIVE_TOO_LARGE = "archive_too_large"
EMPTY_ARCHIVE = "empty_archive"
CORRUPT_ARCHIVE = "corrupt_archive"
AMBIGUOUS_ARCHIVE = "ambiguous_archive"
EMPTY_FILE = "empty_file"

ALL_CODES = frozenset(
    {
        NOT_AN_IMAGE,
        UNSUPPORTED_FORMAT,
        CORRUPT_IMAGE,
        TRUNCATED_FILE,
        PROBE_CRASHED,
        PROBE_TIMEOUT,
        PROBE_OUT_OF_MEMORY,
        TOO_MANY_PIXELS,
        UNSAFE_ARCHIVE,
        ARCHIVE_TOO_LARGE,
        EMPTY_ARCHIVE,
        CORRUPT_ARCHIVE,
        AMBIGUOUS_ARCHIVE,
        EMPTY_FILE,
    }
)


class SlideRejected(Exception):
    """An uploaded file cannot become a slide; ``code`` says why for machines."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ALL_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def __repr__(self) -> str:
        return f"SlideRejected({self.code!r}, {self.message!r})"
