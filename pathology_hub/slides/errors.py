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
#: More than 8 bits per sample, or a sample layout other than grey / RGB(A): the
#: tiling pipeline would show it wrong (16-bit fluorescence came out all white).
UNSUPPORTED_PIXELS = "unsupported_pixels"
#: Several channels (multiplex QPTIFF, OME-TIFF, fluorescence stacks) that the
#: viewer cannot yet composite: showing only the first one would mislead.
MULTICHANNEL_IMAGE = "multichannel_image"
#: A DICOM whole-slide variant OpenSlide does not read (not a damaged file).
UNSUPPORTED_DICOM = "unsupported_dicom"
#: A scanner's own format (SQRAY .sdpc, UNIC .tmap, KFBio .kfb) with no reader wired.
VENDOR_FORMAT = "vendor_format"

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
        UNSUPPORTED_PIXELS,
        MULTICHANNEL_IMAGE,
        UNSUPPORTED_DICOM,
        VENDOR_FORMAT,
    }
)


class SlideRejected(Exception):
    """An uploaded file cannot become a slide; ``code`` says why for machines."""

    def __init__(self, code: str, message: str, params: dict[str, str] | None = None) -> None:
        if code not in ALL_CODES:
            raise ValueError(f"unknown rejection code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        #: What was found, as plain values, so the web layer can say it in the user's language.
        self.params = {str(k): str(v) for k, v in (params or {}).items()}

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message}
        if self.params:
            out["params"] = dict(self.params)
        return out

    def __repr__(self) -> str:
        return f"SlideRejected({self.code!r}, {self.message!r})"
