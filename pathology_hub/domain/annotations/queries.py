"""Reading annotations: who may see them, the viewport and filter query, and the list of a slide
answered from the per-process text cache (:mod:`.cache`).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pathology_hub.domain import policy
from pathology_hub.domain.annotations import cache as annotation_cache
from pathology_hub.domain.annotations.features import _list_feature
from pathology_hub.domain.annotations.geometry import SlideFrame
from pathology_hub.domain.errors import Forbidden, NotFound, ValidationFailed
from pathology_hub.models import Annotation, Slide, User


def _ensure_view(user: User, slide: Slide) -> None:
    if policy.can(user, "annotation.view", slide):
        return
    policy.ensure(user, "slide.view", slide)  # hidden slide → 404
    raise Forbidden("Annotations are shown to technicians and clinicians once the report is signed.",
                    code="report_not_signed")


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None or text == "":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values) \
            or values[0] > values[2] or values[1] > values[3]:
        raise ValidationFailed("bbox must be x0,y0,x1,y1 in slide pixels with x0 ≤ x1 and y0 ≤ y1.",
                               code="invalid_bbox")
    return values[0], values[1], values[2], values[3]


_LIST_COLUMNS = (Annotation.id, Annotation.uid, Annotation.object_type, Annotation.locked, Annotation.geometry,
                 Annotation.geom_type, Annotation.shape, Annotation.area_px, Annotation.length_px,
                 Annotation.class_name, Annotation.color, Annotation.name, Annotation.comment,
                 Annotation.measurements, Annotation.extra, Annotation.author_id, Annotation.version,
                 Annotation.created_at, Annotation.updated_at, Annotation.list_text)


def _filtered(query: Any, slide: Slide, bbox: tuple[float, float, float, float] | None,
              class_name: str | None, author_id: int | None, ids: list[int] | None = None) -> Any:
    query = query.where(Annotation.slide_id == slide.id, Annotation.deleted_at.is_(None))
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        query = query.where(Annotation.min_x <= x1, Annotation.max_x >= x0,
                            Annotation.min_y <= y1, Annotation.max_y >= y0)
    if class_name is not None:
        query = query.where(Annotation.class_name == class_name)
    if author_id is not None:
        query = query.where(Annotation.author_id == author_id)
    if ids is not None:
        query = query.where(Annotation.id.in_(ids))
    return query.order_by(Annotation.id)


def _live_rows(session: Session, slide: Slide, *, bbox: tuple[float, float, float, float] | None = None,
               class_name: str | None = None, author_id: int | None = None,
               ids: list[int] | None = None) -> Iterable[Any]:
    """Plain rows (no ORM objects) for speed; the box test is a range query on the indexed edges."""
    query = select(*_LIST_COLUMNS, User.full_name.label("author_name")).join(User, User.id == Annotation.author_id)
    return session.execute(_filtered(query, slide, bbox, class_name, author_id, ids))


#: Up to this many uncached rows are fetched by id; more re-run the list's own query.
_BY_ID_MAX = 500


def _live_ids(session: Session, slide: Slide, *, bbox: tuple[float, float, float, float] | None = None,
              class_name: str | None = None, author_id: int | None = None) -> list[Any]:
    """Ids, versions and author names only (the feature texts come from the cache)."""
    query = select(Annotation.id, Annotation.version, User.full_name.label("author_name")) \
        .join(User, User.id == Annotation.author_id)
    return list(session.execute(_filtered(query, slide, bbox, class_name, author_id)))


def list_collection_text(session: Session, user: User, slide: Slide, *, bbox: str | None = None,
                         class_name: str | None = None, author: str | None = None) -> bytes:
    """The slide's live annotations (optionally those touching a viewport box) as a GeoJSON
    FeatureCollection, UTF-8 encoded (10,000 polygons are ~23 MB: encoded once, when cached)."""
    _ensure_view(user, slide)
    box = parse_bbox(bbox)
    author_id = None
    if author not in (None, ""):
        if not str(author).isdigit():
            raise ValidationFailed("author must be a user id.", code="invalid_author")
        author_id = int(author)
    frame = SlideFrame.of(slide)
    frame_key = (frame.mpp_x, frame.mpp_y)
    wanted = _live_ids(session, slide, bbox=box, class_name=class_name or None, author_id=author_id)
    keys = [(r.id, r.version) for r in wanted]
    texts = annotation_cache.lookup(slide.id, frame_key, keys)
    missing = [k for k in keys if k not in texts]
    if missing:
        # Many missing (a cold process): the same filtered query, full rows; a few: by id.
        rows = _live_rows(session, slide, bbox=box, class_name=class_name or None, author_id=author_id) \
            if len(missing) > _BY_ID_MAX else _live_rows(session, slide, ids=[k[0] for k in missing])
        fresh = {(r.id, r.version): _list_feature(r, frame) for r in rows}
        whole_slide = box is None and not class_name and author_id is None
        annotation_cache.add(slide.id, frame_key, fresh, live=keys if whole_slide else None)
        texts.update(fresh)
        # A row edited between the two queries (PostgreSQL reads each statement afresh) is
        # answered in its newer version; one deleted in between is left out.
        newer = {key[0]: text for key, text in fresh.items()}
        texts.update({k: newer[k[0]] for k in missing if k not in texts and k[0] in newer})
    return annotation_cache.collection((texts[k], r.author_name) for k, r in zip(keys, wanted) if k in texts)


def get_annotation(session: Session, user: User, slide: Slide, annotation_id: int) -> Annotation:
    _ensure_view(user, slide)
    annotation = session.get(Annotation, annotation_id)
    if annotation is None or annotation.slide_id != slide.id or annotation.deleted_at is not None:
        raise NotFound("No such annotation on this slide.")
    return annotation
