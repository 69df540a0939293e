"""Key views: capturing the viewer's current view of a slide as a figure of the draft, and the
magnification its caption and link carry.

Separate from drafting because it is the only part of a report that reads slides, annotations
and the tile pyramid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, policy
from pathology_hub.domain import report_documents as docs
from pathology_hub.domain.errors import Conflict, NotFound, ValidationFailed
from pathology_hub.domain.reports.guards import _bump_draft, _editable_draft, _now, _refuse, _text
from pathology_hub.domain.reports.reading import visible_versions
from pathology_hub.models import Annotation, Slide, SlideStatus, User
from pathology_hub.models.reports import Report, ReportFigure, ReportVersion


CAPTION_LIMIT = 500


MAX_FIGURES = 12


def _num(data: dict[str, Any], name: str, *, positive: bool = False) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed("%(field)s must be a number.", code="invalid_field", details={"field": name})
    if positive and value <= 0:
        raise ValidationFailed("%(field)s must be positive.", code="invalid_field", details={"field": name})
    return float(value)


def view_bounds(width_px: float, height_px: float, x: float, y: float, zoom: float, container_w: float,
                container_h: float, rotation: float = 0.0) -> tuple[float, float, float, float]:
    """Level-0 pixel box of the viewer's view.

    The viewer reports the centre as fractions of the image width (``x``) and height (``y``)
    and OpenSeadragon's zoom, for which the visible width is ``1/zoom`` image widths; the
    height follows the slide pane's aspect ratio.  A rotated view covers the bounding box of
    the rotated pane (exact for the 90° steps the viewer's buttons make).
    """
    vis_w = width_px / zoom
    vis_h = vis_w * container_h / container_w
    rad = math.radians(rotation or 0.0)
    c, s = abs(math.cos(rad)), abs(math.sin(rad))
    box_w, box_h = vis_w * c + vis_h * s, vis_w * s + vis_h * c
    cx, cy = x * width_px, y * height_px
    return (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)


def add_figure(session: Session, user: User, report: Report, data: dict[str, Any], *, ip: str | None = None,
               now: dt.datetime | None = None) -> ReportFigure:
    """Capture the current view: render the region with its visible annotations and keep it with a caption."""
    from pathology_hub import runtime
    from pathology_hub.reporting.figures import render_figure
    from pathology_hub.domain.annotations import SlideFrame, palette_color
    v = _editable_draft(session, user, report, "add_figure", ip)
    if len(docs.figures_of(session, v)) >= MAX_FIGURES:
        raise ValidationFailed("A report holds at most %(max)s figures.", code="too_many_figures",
                               params={"max": MAX_FIGURES})
    slide_id = data.get("slide_id")
    slide = session.get(Slide, slide_id) if isinstance(slide_id, int) and not isinstance(slide_id, bool) else None
    if slide is None or slide.case_id != report.case_id or not policy.can(user, "slide.view", slide):
        raise ValidationFailed("Choose a slide of this case.", code="invalid_slide", details={"field": "slide_id"})
    if slide.status is not SlideStatus.READY:
        raise Conflict("The slide is not ready for viewing yet.", code="slide_not_ready")
    x, y = _num(data, "x"), _num(data, "y")
    zoom = _num(data, "zoom", positive=True)
    cw, ch = _num(data, "container_width", positive=True), _num(data, "container_height", positive=True)
    rotation = _num(data, "rotation") if data.get("rotation") is not None else 0.0
    caption = _text(data.get("caption"), "caption", CAPTION_LIMIT)
    link = _text(data.get("url"), "url", 2000)
    if link:
        from pathology_hub.domain.view_links import normalise_view_link
        safe = normalise_view_link(link, case_id=report.case_id, base_url=runtime.settings().base_url)
        if safe is None:
            raise ValidationFailed("The view link must be this case's viewer page in this application.",
                                   code="invalid_view_link", details={"field": "url"})
        link = safe
    frame = SlideFrame.of(slide)
    if not frame.width or not frame.height:
        raise Conflict("The slide's size is not known yet.", code="slide_not_ready")
    bounds = view_bounds(frame.width, frame.height, x, y, zoom, cw, ch, rotation)
    x0, y0, x1, y1 = bounds
    rows = session.scalars(select(Annotation).where(
        Annotation.slide_id == slide.id, Annotation.deleted_at.is_(None), Annotation.min_x <= x1,
        Annotation.max_x >= x0, Annotation.min_y <= y1, Annotation.max_y >= y0).order_by(Annotation.id))
    shapes = [{"geometry": json.loads(a.geometry), "color": a.color or palette_color(a.class_name) or "#00a0ff"}
              for a in rows] if policy.can(user, "annotation.view", slide) else []
    out_width = int(min(max(cw, 640), 1600))
    png = render_figure(runtime.store(), _pyramid(slide), bounds, out_width, shapes, rotation)
    sha = hashlib.sha256(png).hexdigest()
    key = f"reports/{report.id}/figures/{sha}.png"
    runtime.store().put_bytes(key, png, content_type="image/png")
    # The caption's magnification is the one the view link reopens at (issue 15): one number,
    # window independent, written into the link as m= (or p= without MPP), as the viewer reads it.
    screen_per_image = zoom * cw / frame.width  # screen (CSS) px per level-0 px, as the viewer had it
    mag = _link_magnification(link) or _shown_magnification(data.get("magnification"))
    native = native_magnification(slide)
    if mag is None and native:
        mag = native * screen_per_image
    link = _with_scale(link or f"/cases/{slide.case_id}/viewer?slide={slide.id}&x={x:.5f}&y={y:.5f}&r={rotation:g}",
                       mag, screen_per_image)
    magnification = format_magnification(mag) if mag else ""
    now = _now(now)
    position = 1 + max((f.position for f in docs.figures_of(session, v)), default=0)
    fig = ReportFigure(version_id=v.id, slide_id=slide.id, position=position, caption=caption, view_link=link,
                       bounds=json.dumps([round(b, 1) for b in bounds]), rotation=rotation,
                       magnification=magnification, image_key=key, sha256=sha, created_by_id=user.id, created_at=now)
    # a figure is part of the draft: bump the revision so a signature covers what the signer saw
    _bump_draft(session, user, v, "add_figure", now, ip)
    session.add(fig)
    session.flush()
    audit.record(session, "report.figure_added", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "figure_id": fig.id,
                                                         "slide_id": slide.id, "annotations": len(shapes)})
    return fig


def _pyramid(slide: Slide):
    """The slide's stored pyramid (version 0 is a valid first pyramid, as for the tile endpoints)."""
    from pathology_hub import runtime
    from pathology_hub.tiling.errors import TileNotFound
    from pathology_hub.tiling.reader import PyramidReader
    from pathology_hub.domain.slides import pyramid_prefix
    try:
        return PyramidReader(runtime.store(), pyramid_prefix(slide))
    except TileNotFound:
        raise Conflict("The slide's tiled image is not stored yet.", code="slide_not_ready") from None


#: µm per pixel a 40× objective scans at: the viewer's objective-equivalent magnification (measure.js).
MPP_AT_40X = 0.25


def native_magnification(slide: Slide) -> float | None:
    """The viewer's native magnification: objective-equivalent from MPP, else the objective power."""
    try:
        mpp = json.loads(slide.description or "{}").get("mpp_x")
    except (ValueError, AttributeError):
        mpp = None
    if isinstance(mpp, (int, float)) and not isinstance(mpp, bool) and math.isfinite(mpp) and mpp > 0:
        return MPP_AT_40X / float(mpp) * 40
    return _objective_power(slide)


def format_magnification(mag: float) -> str:
    """As the viewer's read-out writes it: "10×", "2.5×"."""
    if mag >= 9.95:
        return f"{round(mag)}×"
    return f"{mag:.1f}".removesuffix(".0") + "×"


def _shown_magnification(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 < value <= 400
    return float(value) if ok else None


def _link_magnification(link: str) -> float | None:
    from urllib.parse import parse_qs, urlsplit
    values = parse_qs(urlsplit(link).query).get("m") if link else None
    try:
        return _shown_magnification(float(values[-1])) if values else None
    except ValueError:
        return None


def _with_scale(link: str, mag: float | None, screen_per_image: float) -> str:
    """The link with its scale as ``m`` (magnification) or ``p`` (image px per screen px), never
    the window-relative ``z`` of old viewers, so it reopens at the caption's magnification."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("z", "m", "p")]
    query.append(("m", f"{mag:.5g}") if mag else ("p", f"{1 / screen_per_image:.5g}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _objective_power(slide: Slide) -> float | None:
    try:
        value = json.loads(slide.description or "{}").get("objective_power")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def figure(session: Session, user: User, report: Report, figure_id: int) -> ReportFigure:
    fig = session.get(ReportFigure, figure_id)
    if fig is None or fig.version_id not in {v.id for v in visible_versions(user, report)}:
        raise NotFound("No such figure.")
    return fig


def delete_figure(session: Session, user: User, report: Report, figure_id: int, *, ip: str | None = None,
                  now: dt.datetime | None = None) -> ReportVersion:
    fig = figure(session, user, report, figure_id)
    owner = session.get(ReportVersion, fig.version_id)
    if owner.status != "draft":
        raise _refuse(session, user, owner, "delete_figure", ip)
    v = _editable_draft(session, user, report, "delete_figure", ip)
    if owner.id != v.id:
        raise NotFound("No such figure.")
    _bump_draft(session, user, v, "delete_figure", _now(now), ip)
    session.delete(fig)
    session.flush()
    audit.record(session, "report.figure_deleted", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "figure_id": figure_id})
    return v
