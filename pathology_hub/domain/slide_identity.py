"""Vendor text fields that can carry a patient's identity follow the label rule (``slide.view_label``).

Ingest already drops the obvious keys (``slides/metadata.py``: patient, barcode, filename, label...),
but some scanners write the patient or case into fields with harmless names: Hamamatsu NDPI's
``Reference`` (tag 65427), Aperio's ``Filename``/``Title``, a DICOM source's ``PatientName``/``PatientID``.
Whatever of those is still in a stored description is shown only to users who may see the glass label,
exactly like the label image; the DICOM views and exports never copy any of it (``domain/dicom``).
"""

from __future__ import annotations

import re
from typing import Mapping

from ..models import Slide, User
from . import policy

IDENTITY_KEY = re.compile(r"reference|filename|title|patient|barcode|label|name$|accession|comment|description",
                          re.IGNORECASE)


def visible_properties(user: User, slide: Slide, properties: Mapping[str, str]) -> dict[str, str]:
    """``properties`` as this user may read them: identity-carrying fields only under ``slide.view_label``."""
    if policy.can(user, "slide.view_label", slide):
        return dict(properties)
    return {k: v for k, v in properties.items() if not IDENTITY_KEY.search(k)}
