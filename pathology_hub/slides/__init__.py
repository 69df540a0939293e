"""Identifying, validating and describing uploaded slide files.

Public API: :func:`inspect_slide`, :func:`extract_associated_images`,
:func:`make_thumbnail`, :func:`safe_extract_zip`, :func:`assess_quality`,
:class:`SlideDescription`, :class:`QualityReport`, :class:`SlideRejected`.
"""

from .archive import find_openable, safe_extract_zip
from .errors import SlideRejected
from .inspection import extract_associated_images, inspect_slide, make_thumbnail
from .metadata import SlideDescription
from .quality import QualityReport, QualityWarning, assess_quality

__all__ = [
    "QualityReport",
    "QualityWarning",
    "SlideDescription",
    "SlideRejected",
    "assess_quality",
    "extract_associated_images",
    "find_openable",
    "inspect_slide",
    "make_thumbnail",
    "safe_extract_zip",
]
