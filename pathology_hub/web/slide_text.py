"""Words about slides in the user's language: stain categories, statuses, rejection reasons,
and the message of a refused submission that names every blocking slide.

The domain raises English messages with stable codes and structured details; the error
catalogue (web/error_messages.py) builds the slide-specific ones with :data:`RENDERERS`, so a
Chinese user never reads "Every slide of the case must be ready…" in English.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ..domain import slide_facts
from .ingest_text import REJECT_LABELS as _INGEST_REJECT_LABELS

if TYPE_CHECKING:
    from ..models import Slide

#: Keyed by the stored value of each stain category (``slide_facts.STAIN_CATEGORIES``).
STAIN_CATEGORY_LABELS = {"he": _l("H&E"), "ihc": _l("IHC"), "special": _l("Special stain"),
                         "fluorescence": _l("Fluorescence"), "multiplex": _l("Multiplex")}
STATUS_LABELS = {"inspecting": _l("inspecting"), "rejected": _l("rejected"), "tiling": _l("tiling"),
                 "ready": _l("ready"), "failed": _l("failed"), "withdrawn": _l("withdrawn")}
REJECT_LABELS = {
    "storage_unavailable": _l("object storage was unreachable for too long; retry the slide"),
    "not_an_image": _l("the file is not a slide or image"),
    "unsupported_format": _l("the file format is not supported"),
    "corrupt_image": _l("the image is damaged"),
    "truncated_file": _l("the file is incomplete (truncated)"),
    "probe_crashed": _l("the file could not be read safely"),
    "probe_timeout": _l("reading the file took too long"),
    "probe_out_of_memory": _l("the file needs too much memory to read"),
    "too_many_pixels": _l("the image is larger than the limit"),
    "unsafe_archive": _l("the archive is unsafe"),
    "archive_too_large": _l("the archive is too large"),
    "empty_archive": _l("the archive is empty"),
    "corrupt_archive": _l("the archive is damaged"),
    "ambiguous_archive": _l("the archive contains several slides"),
    "empty_file": _l("the file is empty"),
    "inspection_failed": _l("inspection failed"),
    "tiling_failed": _l("building the image pyramid failed"),
    "inspecting": _l("still being inspected"),
    "tiling": _l("still being processed"),
}
REJECT_LABELS.update(_INGEST_REJECT_LABELS)  # issue #19 refusals (web/ingest_text.py)


def stain_category_label(value: str | None) -> str:
    return str(STAIN_CATEGORY_LABELS.get(value or "", value or ""))


def stain_display(slide: Slide) -> str:
    """"H&E", "IHC Ki-67", "特殊染色 PAS" or, for an unclassified legacy value, the text as stored."""
    category = slide_facts.category_of(slide)
    name = slide_facts.stain_name(slide)
    if category is None:
        return slide.stain or ""
    label = stain_category_label(category.value)
    return f"{label} {name}".strip() if name else label


def reason_label(code: str | None) -> str:
    return str(REJECT_LABELS.get(code or "", code or ""))


def _blocking_line(item: dict[str, Any]) -> str:
    status = str(STATUS_LABELS.get(item.get("status", ""), item.get("status", "")))
    reason = reason_label(item.get("reason_code"))
    return _("%(label)s (%(file)s): %(status)s, %(reason)s", label=item.get("label", ""),
             file=item.get("filename", ""), status=status, reason=reason) if reason and reason != status else \
        _("%(label)s (%(file)s): %(status)s", label=item.get("label", ""), file=item.get("filename", ""),
          status=status)


def _slides_not_ready(params: Mapping[str, Any], message: str = "") -> str:
    items = params.get("slides") or []
    if not items:
        return _("The case has no slide yet: upload at least one slide before submitting the request.")
    lines = "; ".join(_blocking_line(i) for i in items)
    return _("The request cannot be submitted until every slide is ready. Blocking: %(slides)s. "
             "Withdraw a rejected or unwanted slide on the case page, or wait until processing finishes.",
             slides=lines)


def _duplicate(params: Mapping[str, Any], message: str = "") -> str:
    return _("This file is already slide %(label)s of this case. To attach it again, confirm that you want a "
             "second copy (metadata allow_duplicate).", label=params.get("label", ""))


def _field_error(code: str) -> Callable[[Mapping[str, Any], str], str | None]:
    """Stain and block fields named in the user's language; other forms' fields fall through (None)."""
    def render(params: Mapping[str, Any], message: str = "") -> str | None:
        field = params.get("field", "")
        names = {"stain": _("Stain or marker"), "block_label": _("Block / part"), "stain_category": _("Stain type"),
                 "reason": _("Reason")}
        if field not in names or (field == "reason" and code != "field_too_long"):
            return None  # the same codes are raised for other forms' fields
        if code == "field_too_long":
            return _("%(field)s is too long (at most %(max)s characters).", field=names[field],
                     max=params.get("max", ""))
        if code == "invalid_characters":
            return _("%(field)s may contain letters, digits, spaces and - + / ( ) . , & : # %% only.",
                     field=names[field])
        if code == "missing_field":
            return _("%(field)s is required for this stain type (e.g. the IHC marker).", field=names[field])
        return None
    return render


#: code -> renderer(params, message) used by web/error_messages.py (None: not this module's case).
RENDERERS: dict[str, Callable[[Mapping[str, Any], str], str | None]] = {
    "slides_not_ready": _slides_not_ready, "duplicate_slide": _duplicate,
    "field_too_long": _field_error("field_too_long"), "invalid_characters": _field_error("invalid_characters"),
    "missing_field": _field_error("missing_field"),
}
