"""Identifying, validating and describing uploaded slide files.

Public API: :func:`inspect_upload` (what ingest uses), :func:`inspect_slide`, :func:`extract_associated_images`,
:func:`make_thumbnail`, :func:`safe_extract_zip`, :func:`assess_quality`,
:class:`SlideDescription`, :class:`QualityReport`, :class:`SlideRejected`.
"""

from .archive import find_openable, safe_extract_zip
from .errors import SlideRejected
from .inspection import Inspection, extract_associated_images, inspect_slide, inspect_upload, make_thumbnail
from .metadata import SlideDescription
from .quality import QualityReport, QualityWarning, assess_quality

__all__ = [
    "Inspection",
    "QualityReport",
    "QualityWarning",
    "SlideDescription",
    "SlideRejected",
    "assess_quality",
    "extract_associated_images",
    "find_openable",
    "inspect_slide",
    "inspect_upload",
    "make_thumbnail",
    "safe_extract_zip",
]
