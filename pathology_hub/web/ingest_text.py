"""What ingest found, in the user's language: refusals with their facts, QC notes, content type.

The probe raises English messages for logs and API clients plus plain ``params`` (bits per
sample, channel count, scanner format...). People read the sentences below, rendered from
those params in zh or en, so a Chinese technician learns exactly what was found and what to
do at the centre, not just "the format is not supported".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable, Mapping

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l


if TYPE_CHECKING:  # only names the type; the web layer reads slides through the domain
    from ..models import Slide



def _names(params: Mapping[str, str]) -> str:
    names = params.get("names") or ""
    return _(" (%(names)s)", names=names) if names else ""


def _truncated(p: Mapping[str, str]) -> str | None:
    if p.get("size") and not p.get("needed"):
        return _("The file contains only a TIFF header (%(size)s bytes) and no image: the upload or copy was "
                 "interrupted. Please upload the original file again.", size=p["size"])
    if p.get("size") and p.get("needed"):
        return _("The file is incomplete: it is %(size)s bytes long, but its image data needs at least "
                 "%(needed)s bytes. The upload or copy was probably interrupted; please upload the original "
                 "file again.", size=p["size"], needed=p["needed"])
    return None


_DETAILS: dict[str, Callable[[Mapping[str, str]], str | None]] = {
    "unsupported_pixels": lambda p: _(
        "The image stores %(bits)s bits per sample (%(samples)s sample(s) per pixel). The viewer shows 8-bit "
        "grey or RGB images only, so this image would be displayed wrongly (for example all white). Please "
        "export it from the scanner or analysis software as an 8-bit RGB TIFF or SVS and upload that file.",
        bits=p.get("bits", "?"), samples=p.get("samples", "?")),
    "multichannel_image": lambda p: _(
        "The file is a multi-channel %(kind)s image with %(channels)s channels%(names)s. The viewer cannot yet "
        "show several fluorescence or multiplex channels together, and showing only the first channel would "
        "mislead. Please export a composite 8-bit RGB TIFF from the analysis software and upload that file.",
        kind=p.get("kind", "TIFF"), channels=p.get("channels", "?"), names=_names(p)),
    "unsupported_dicom": lambda p: _(
        "The file is a DICOM whole-slide image of a variant this platform cannot read yet (the reader reports: "
        "%(detail)s). The file is not necessarily damaged. Please export the slide from the scanner software "
        "as SVS or TIFF and upload that file.", detail=p.get("detail", "")),
    "vendor_format": lambda p: _(
        "The file is in %(format)s format (recognised by its signature), which this platform cannot read yet. "
        "Please export the slide as SVS or TIFF with the %(vendor)s scanner software and upload the exported "
        "file.", format=p.get("format", ""), vendor=str(_MAKERS.get(p.get("vendor", ""), p.get("vendor", "")))),
    "truncated_file": _truncated,
    "corrupt_image": lambda p: _(
        "The file is recognised as %(format)s, but its image data is damaged and cannot be decoded "
        "(%(detail)s). Please re-export or rescan the slide and upload it again.",
        format=p["format"], detail=p.get("detail", "")) if p.get("format") else None,
    "unsupported_format": lambda p: _(
        "The file looks like %(format)s, but this variant cannot be read (%(detail)s). Please export the "
        "slide from the scanner software as SVS or TIFF and upload that file.",
        format=p["format"], detail=p.get("detail", "")) if p.get("format") else None,
}

#: Scanner makers as Chinese pathology departments call them.
_MAKERS = {"SQRAY": _l("SQRAY"), "UNIC": _l("UNIC"), "KFBio": _l("KFBio")}

#: Short reasons for the new refusal codes (the case list's "Rejected: …").
REJECT_LABELS = {
    "unsupported_pixels": _l("the image's bit depth or colour layout cannot be shown faithfully"),
    "multichannel_image": _l("multi-channel (fluorescence/multiplex) images cannot be shown yet"),
    "unsupported_dicom": _l("this DICOM variant is not supported"),
    "vendor_format": _l("this scanner format cannot be read yet"),
}


def reject_params(slide: Slide) -> dict[str, str]:
    try:
        data = json.loads(slide.reject_params or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def reject_detail(slide: Slide) -> str | None:
    """The refusal with what was found, in the user's language; None when it has no params."""
    render = _DETAILS.get(slide.reject_code or "")
    params = reject_params(slide)
    return render(params) if render and params else None


# ---------------------------------------------------------------- quality notes
def qc_labels() -> dict[str, str]:
    """Templates for the case page's JavaScript; ``{name}`` is filled from the warning's values."""
    return {
        "implausible_mpp": _("The file's resolution tag (%(mpp)s µm/px) is a print resolution, not a microscope "
                             "pixel size; it was ignored, so measurements and the scale bar are unavailable.",
                             mpp="{mpp}"),
        "not_whole_slide": _("Only %(width)s × %(height)s pixels: probably not a whole-slide scan; no "
                             "magnification is shown.", width="{width}", height="{height}"),
        "extension_mismatch": _("The file name's extension does not match its contents; check that the right "
                                "file was uploaded."),
    }


def qc_text(warning: Mapping[str, Any]) -> str | None:
    """One of this module's QC warnings in the user's language (None: not one of ours)."""
    template = qc_labels().get(str(warning.get("code")))
    if template is None:
        return None
    for key, value in (warning.get("values") or {}).items():
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else str(value)
        template = template.replace("{" + key + "}", shown)
    return template


# ---------------------------------------------------------------- content type
def content_label(content: str | None) -> str | None:
    labels = {"photo": _("Photograph (not a whole-slide scan)"),
              "tiny": _("Small image (probably not a whole-slide scan)"),
              "fluorescence": _("Fluorescence scan")}
    return labels.get(content or "")
