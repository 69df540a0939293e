"""A slide's coarse preview, sent by the scanner-side uploader before the original (issue #21).

Over a 10 Mbit/s uplink a 1 GB slide takes ~14 minutes; its levels down to 1/16 of full
resolution are a few megabytes.  The uploader builds them as Deep Zoom tiles in the pyramid's own
pack format (:mod:`pathology_hub.tiling.pack`) and sends them right after creating the tus upload.
This module checks them (never trusting the client: geometry bounds, exactly the expected tiles,
each a decodable JPEG of the size the declared geometry gives) and stores them as pyramid version
0 of a slide that exists from then on with ``preview_level`` set.

When the original arrives (:func:`..uploads.complete_upload`) it is attached to that same slide
and tiled into the next pyramid version; :func:`..processing.run_tiling` switches the slide to it
and clears ``preview_level``.  The original file stays the diagnostic record: a preview-only slide
is marked as such everywhere, and a report cannot be signed while one is on the case.
"""

from __future__ import annotations

import io
import json
import struct
import uuid

from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from pathology_hub.domain import audit, policy
from pathology_hub.domain.errors import Conflict, NotFound, TooLarge, ValidationFailed
from pathology_hub.domain.slides.keys import thumbnail_key
from pathology_hub.models import Case, Slide, SlideStatus, Upload, UploadState, User
from pathology_hub.tiling import layout
from pathology_hub.tiling.geometry import Geometry
from pathology_hub.tiling.pack import MAGIC, PackInfo, parse_index
from pathology_hub.uploads.staging import InvalidUploadId, StagingArea, UploadNotFound
from storage.base import ObjectStore

#: The preview holds every level at or below 1/2**PREVIEW_DEPTH of full resolution.
PREVIEW_DEPTH = 4
MAX_SIDE = 1 << 21  # level-0 pixels per side; far above any scanner
_FOOTER = struct.Struct("<Q8s")  # same footer as tiling/pack.py writes
#: Manifest field telling readers (and people) this pyramid is the uploader's preview.
PREVIEW_FIELD = "upload_preview"


def preview_levels(geometry: Geometry) -> list[int]:
    """Deep Zoom levels the preview carries: 1/16 of full resolution and coarser."""
    return [lv for lv in range(geometry.level_count) if geometry.depth(lv) >= PREVIEW_DEPTH]


def preview_of(slide: Slide) -> dict | None:
    """What a person must know about a preview-only slide: the finest Deep Zoom level there so far and
    which fraction of full resolution it is (1/16); None once the full-resolution pyramid is in."""
    if slide.preview_level is None:
        return None
    try:
        width, height = (int(v) for v in (json.loads(slide.description or "{}")[k] for k in ("width", "height")))
        full = Geometry(width, height).max_level  # Deep Zoom level count does not depend on the tile size
    except (KeyError, TypeError, ValueError):
        return {"max_level": slide.preview_level, "max_fraction": None}
    return {"max_level": slide.preview_level, "max_fraction": 1 / (1 << max(0, full - slide.preview_level))}


def _int(value: object, name: str, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise ValidationFailed("The preview's %(field)s must be a whole number.", code="preview_invalid",
                               params={"field": name}) from None
    if not low <= number <= high:
        raise ValidationFailed("The preview's %(field)s is out of range.", code="preview_invalid",
                               params={"field": name})
    return number


def check_preview(pack: bytes, width: object, height: object, tile_size: object, overlap: object) -> tuple[Geometry, PackInfo]:
    """The declared geometry and the pack's index, if the pack is exactly the preview tiles of that geometry.

    Every tile is decoded: a JPEG whose pixel size is the tile's Deep Zoom size.  Anything else
    (missing, extra or blank tiles, overlapping ranges, other formats) is refused."""
    geom = Geometry(_int(width, "width", 1, MAX_SIDE), _int(height, "height", 1, MAX_SIDE),
                    _int(tile_size, "tile_size", 64, 4096), _int(overlap, "overlap", 0, 8))
    bad = ValidationFailed("The preview is not a valid tile pack for the declared slide size.",
                           code="preview_invalid", params={"field": "pack"})
    if len(pack) < _FOOTER.size:
        raise bad
    length, magic = _FOOTER.unpack(pack[-_FOOTER.size:])
    if magic != MAGIC or length > len(pack) - _FOOTER.size:
        raise bad
    index_offset = len(pack) - _FOOTER.size - length
    try:
        index = parse_index(pack[index_offset:index_offset + length])
    except (ValueError, TypeError):
        raise bad from None
    levels = preview_levels(geom)
    expected = {(lv, c, r) for lv in levels for c in range(geom.level_tiles(lv)[0])
                for r in range(geom.level_tiles(lv)[1])}
    if set(index) != expected:
        raise bad
    for (lv, c, r), (off, ln) in index.items():
        if not (isinstance(off, int) and isinstance(ln, int)) or off < 0 or ln <= 0 or off + ln > index_offset:
            raise bad
        _, _, w, h = geom.tile_box(lv, c, r)
        try:
            with Image.open(io.BytesIO(pack[off:off + ln])) as img:
                if img.format != "JPEG" or img.size != (w, h):
                    raise bad
                img.load()
        except (UnidentifiedImageError, OSError, SyntaxError):
            raise bad from None
    return geom, PackInfo(layout.top_key("x"), len(pack), index_offset, length, len(index), 0)


def attach_preview(session: Session, store: ObjectStore, user: User, upload_id: str, pack: bytes, *,
                   width: object, height: object, tile_size: object, overlap: object, max_bytes: int) -> Slide:
    """Store the uploader's preview of the unfinished upload ``upload_id`` (the Upload row id) as a slide.

    Same authorisation as resuming the tus upload: its uploader, or someone who may upload to the
    case.  Sending it again replaces it (an uploader retrying); after the original arrived it is refused."""
    upload = session.get(Upload, upload_id)
    case = session.get(Case, upload.case_id) if upload is not None else None
    if upload is None or case is None or not policy.can(user, "case.view", case):
        raise NotFound("No such upload.")
    if upload.user_id != user.id:
        policy.ensure(user, "slide.upload", case)
    if len(pack) > max_bytes:
        raise TooLarge("The preview is larger than %(max_bytes)s bytes.", code="preview_too_large",
                       params={"max_bytes": max_bytes})
    if upload.state not in (UploadState.RECEIVING, UploadState.STORING):
        raise Conflict("This upload is no longer receiving; a preview is not needed.", code="preview_too_late")
    slide = session.get(Slide, upload.slide_id) if upload.slide_id else None
    if slide is not None and slide.preview_level is None:
        raise Conflict("This upload is no longer receiving; a preview is not needed.", code="preview_too_late")
    geom, info = check_preview(pack, width, height, tile_size, overlap)
    if slide is None:
        from pathology_hub.domain.slides.uploads import _next_label
        slide = Slide(uid=uuid.uuid4().hex, case_id=upload.case_id, label=_next_label(session, upload.case_id),
                      stain=upload.stain, original_filename=upload.filename, status=SlideStatus.INSPECTING,
                      created_by_id=upload.user_id, pyramid_version=0)
        session.add(slide)
        session.flush()
        upload.slide_id = slide.id
    levels = preview_levels(geom)
    slide.preview_level = max(levels)
    slide.description = json.dumps({"width": geom.width, "height": geom.height})
    _store(store, layout.pyramid_prefix(slide.uid, slide.pyramid_version), geom, info, pack, levels)
    # the slide's thumbnail until ingest writes the real one: the finest single-tile preview level
    thumb = max(lv for lv in levels if geom.level_tiles(lv) == (1, 1))
    off, ln = parse_index(pack[info.index_offset:info.index_offset + info.index_length])[(thumb, 0, 0)]
    store.put_bytes(thumbnail_key(slide), pack[off:off + ln], content_type="image/jpeg")
    audit.record(session, "slide.preview", actor=user, object_type="slide", object_id=slide.id,
                 case_id=slide.case_id, details={"upload": upload.id, "bytes": len(pack), "levels": levels})
    return slide


def _store(store: ObjectStore, prefix: str, geom: Geometry, info: PackInfo, pack: bytes, levels: list[int]) -> None:
    """The pack as the pyramid's top pack and a complete manifest that names only the preview levels
    (a finer tile is then "not found" at once, never rendered on demand from an original not there yet)."""
    key = layout.top_key(prefix)
    store.put_bytes(key, pack, content_type="application/octet-stream")
    manifest = {
        "format": layout.FORMAT, "complete": True, PREVIEW_FIELD: True,
        "dzi": {"format": "jpeg", "tile_size": geom.tile_size, "overlap": geom.overlap,
                "width": geom.width, "height": geom.height},
        "levels": [{"level": lv, "width": w, "height": h, "cols": geom.level_tiles(lv)[0],
                    "rows": geom.level_tiles(lv)[1]} for lv, (w, h) in enumerate(geom.level_dimensions)],
        "levels_available": levels,
        "layout": {"coarse_levels": levels, "fine": [], "fine_levels": 0, "block_tiles": 0},
        "blank": {"key": layout.blank_key(prefix), "tiles": {}},
        "packs": {"top": {**info.to_json(), "key": key}},
    }
    store.put_bytes(layout.manifest_key(prefix), json.dumps(manifest, sort_keys=True).encode(),
                    content_type="application/json")


def upload_row_of(info_owner: dict | None) -> str:
    """The Upload row id a tus upload's owner record names ("" when none)."""
    return str((info_owner or {}).get("upload_row") or "")


def attach_preview_for(user: User, staging: StagingArea, store: ObjectStore, tus_id: str, pack: bytes,
                       **kwargs: object) -> Slide:
    """:func:`attach_preview` for the tus upload ``tus_id``, in the current unit of work (the web's one call)."""
    from pathology_hub.domain import unit_of_work
    try:
        info = staging.load(tus_id)
    except (InvalidUploadId, UploadNotFound):
        raise NotFound("No such upload.") from None
    with unit_of_work.transaction() as session:
        return attach_preview(session, store, user, upload_row_of(info.owner), pack, **kwargs)  # type: ignore[arg-type]
