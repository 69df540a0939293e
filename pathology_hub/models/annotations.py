"""Annotations drawn on (or imported into) a slide.

Geometry is kept as GeoJSON text in full-resolution slide pixels, exactly as the
client sent it (so an exported file re-imports coordinate for coordinate), with
its bounding box in four indexed columns: a viewport query is then a plain range
query that works the same on SQLite and PostgreSQL, no spatial extension needed.
Pixel area and length are computed once at write time, so listing thousands of
polygons never re-parses their geometry.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .accounts import User
from .base import Base, utcnow
from .cases import Slide


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (
        # QuPath ids (UUIDs) are unique per slide, deleted rows included, so a re-import never reuses one.
        UniqueConstraint("slide_id", "uid", name="uq_annotations_slide_uid"),
        # Covering index for the viewport query: slide, then the four box edges.
        Index("ix_annotations_slide_bbox", "slide_id", "min_x", "max_x", "min_y", "max_y"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slide_id: Mapped[int] = mapped_column(ForeignKey("slides.id"))
    uid: Mapped[str] = mapped_column(String(64))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    object_type: Mapped[str] = mapped_column(String(16), default="annotation")  # annotation | detection | cell
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    geometry: Mapped[str] = mapped_column(Text)                  # GeoJSON geometry, compact JSON
    geom_type: Mapped[str] = mapped_column(String(16))
    shape: Mapped[str | None] = mapped_column(String(16))        # "ellipse" / "rectangle" for the editor
    min_x: Mapped[float] = mapped_column(Float)
    min_y: Mapped[float] = mapped_column(Float)
    max_x: Mapped[float] = mapped_column(Float)
    max_y: Mapped[float] = mapped_column(Float)
    area_px: Mapped[float] = mapped_column(Float, default=0.0)
    length_px: Mapped[float] = mapped_column(Float, default=0.0)  # perimeter of areas, length of lines
    class_name: Mapped[str | None] = mapped_column(String(100))
    color: Mapped[str | None] = mapped_column(String(7))          # "#rrggbb"
    name: Mapped[str] = mapped_column(String(200), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    measurements: Mapped[str] = mapped_column(Text, default="{}")  # JSON object name -> number
    extra: Mapped[str] = mapped_column(Text, default="{}")         # other imported properties, kept verbatim
    version: Mapped[int] = mapped_column(Integer, default=1)
    # The list API's text of this row from '"properties":{' up to (not including) the µm
    # measurements and author name, written with every change: a process that has no
    # cached list (restart, change) splices it instead of serialising 10,000 rows.
    # NULL (rows from before migration 0006, a racing edit) means: serialise on read.
    list_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None]

    author: Mapped[User] = relationship(lazy="joined")
    slide: Mapped[Slide] = relationship()
