"""The slide's processing jobs: ``ingest`` (inspect in a sandbox, thumbnail, associated images,
quality) and ``tile`` (build the pyramid), and what a slide shows when either gives up.

Each step is idempotent so a retried job never duplicates data; a slide deleted meanwhile makes
its job a no-op.
"""

from __future__ import annotations

import io
import json

from sqlalchemy.orm import Session

from pathology_hub.domain import audit, jobs
from pathology_hub.domain.slides.keys import associated_key, thumbnail_key
from pathology_hub.domain.slides.originals import cache_dir, local_original, openable_path
from pathology_hub.models import Job, Slide, SlideStatus


def _live_slide(session: Session, job: Job) -> Slide | None:
    """The job's slide, or None when it was deleted meanwhile (then the job has nothing to do)."""
    slide = session.get(Slide, job.slide_id)
    return None if slide is None or slide.deleted_at is not None else slide


def run_ingest(session: Session, job: Job, ctx: jobs.JobContext) -> None:
    from pathology_hub import runtime
    from pathology_hub.slides import SlideRejected, assess_quality, inspect_upload
    from PIL import Image

    store = runtime.store()
    slide = _live_slide(session, job)
    if slide is None:
        return
    path = local_original(store, slide.original, slide.original_filename)
    ctx.heartbeat({"phase": "inspecting"}, force=True)
    unpack_dir = cache_dir() / "unpacked" / slide.original.sha256
    try:
        inspection = inspect_upload(path, extract_to=unpack_dir, thumbnail_size=(1024, 1024))
    except SlideRejected as exc:
        slide.status = SlideStatus.REJECTED
        slide.reject_code, slide.reject_message = exc.code, exc.message
        slide.reject_params = json.dumps(exc.params) if exc.params else None
        audit.record(session, "slide.rejected", object_type="slide", object_id=slide.id, case_id=slide.case_id,
                     details={"code": exc.code})
        session.commit()
        return
    desc, thumb = inspection.description, inspection.thumbnail
    slide.description = json.dumps(desc.to_dict())
    _honest_stain(slide, desc)
    session.commit()
    store.put_bytes(thumbnail_key(slide), thumb, content_type="image/jpeg")
    ctx.storage_ok()
    for name, data in inspection.associated.items():
        store.put_bytes(associated_key(slide, name), data, content_type="image/png")
    report = assess_quality(Image.open(io.BytesIO(thumb)), desc, filename=slide.original_filename)
    slide.quality = json.dumps(report.to_dict())
    slide.status = SlideStatus.TILING
    tile_job = jobs.create(session, "tile", slide_id=slide.id)
    session.commit()
    jobs.enqueue(tile_job.id)


def _honest_stain(slide: Slide, desc) -> None:
    """Never leave the upload's default "H&E" on what the file shows is something else.

    A fluorescence NDPI names its channel: the slide becomes fluorescence with that name.
    A camera photograph says nothing about its stain, so it becomes "unclassified" (the centre
    sets it with "Edit stain and block"). Uploads carry "H&E" when the client sent no stain, so
    an "H&E" typed on purpose cannot be told apart; any other stain or a category set meanwhile
    is left alone.
    """
    from pathology_hub.domain import slide_facts
    from pathology_hub.models import StainCategory

    if slide.stain_category is not None or not slide_facts.is_he(slide.stain):
        return
    if desc.modality == "fluorescence":
        slide.stain_category = StainCategory.FLUORESCENCE
        names = " / ".join(str(c.get("name", "")) for c in desc.channels)
        slide.stain = (desc.properties.get("hamamatsu.Fluorescence") or names or "")[:64]
    elif desc.kind == "photo":
        slide.stain = ""


def run_tiling(session: Session, job: Job, ctx: jobs.JobContext) -> None:
    from pathology_hub import runtime
    from pathology_hub.tiling import TilingError, layout

    store = runtime.store()
    slide = _live_slide(session, job)
    if slide is None:
        return
    source = openable_path(store, slide)

    def progress(p) -> None:
        if p.phase == "preview":  # reported right after the preview manifest was stored
            ctx.storage_ok()
        ctx.heartbeat({"phase": p.phase, "tiles_done": p.tiles_done, "tiles_total": p.tiles_total,
                       "level": p.level, "eta_seconds": p.eta_seconds,
                       "elapsed_seconds": round(p.elapsed_seconds, 1)}, force=p.phase != "levels")

    # A slide showing the uploader's preview keeps showing it until the full pyramid, built into
    # the next version, is complete; then it switches over (domain/slides/preview.py).
    version = slide.pyramid_version + (1 if slide.preview_level is not None else 0)
    try:
        prefix = layout.pyramid_prefix(slide.uid, version)
        result = build_slide_pyramids(str(source), _channels(slide), store, prefix, progress=progress)
    except TilingError as exc:
        raise jobs.JobFailed(str(exc)) from exc
    ctx.heartbeat({"phase": "done", "tiles_done": result.tiles_total, "tiles_total": result.tiles_total,
                   "seconds": round(result.seconds, 1)}, force=True)
    slide.status = SlideStatus.READY
    slide.pyramid_version, slide.preview_level = version, None
    audit.record(session, "slide.ready", object_type="slide", object_id=slide.id, case_id=slide.case_id,
                 details={"tiles": result.tiles_total, "seconds": round(result.seconds, 1)})
    session.commit()


def _channels(slide: Slide) -> list[dict]:
    from .descriptions import description_of

    return description_of(slide).get("channels") or []


def build_slide_pyramids(source: str, channels: list[dict], store, prefix: str, *, progress=None):
    """The slide's pyramid under ``prefix`` and, for a fluorescence or multiplex slide, each
    channel as its own 8-bit grey pyramid under ``{prefix}/c{k}``; returns the slide pyramid's result.

    The slide's own pyramid is the colour composite; the viewer composes the channel pyramids
    itself so each can be switched off or re-windowed. The windows are the ones inspection stored
    in the description, so tiles and the stored window agree. The channels' blocks are rendered
    with the composite's, from the channel data it has just decoded (``companions``); each channel's
    own build then adds its coarse levels. Bright-field slides have no channels and pay nothing.
    """
    import tempfile

    from pathology_hub.slides.readers.channels import write_view
    from pathology_hub.tiling import build_pyramid

    if not channels:
        return build_pyramid(source, store, prefix, progress=progress)
    windows = [tuple(c["window"]) for c in channels]
    with tempfile.TemporaryDirectory(prefix="hub-channels-") as tmp:
        views = [(write_view(tmp, source, int(ch["index"]), windows), f"{prefix}/{ch['prefix']}") for ch in channels]
        result = build_pyramid(source, store, prefix, progress=progress, companions=views)
        for view, view_prefix in views:
            build_pyramid(view, store, view_prefix, progress=progress)
    return result


#: reject_code of a slide whose job gave up because object storage stayed unreachable past the horizon.
STORAGE_UNAVAILABLE = "storage_unavailable"


def mark_job_failed(session: Session, job: Job) -> None:
    slide = session.get(Slide, job.slide_id)
    if slide is not None and slide.status in (SlideStatus.INSPECTING, SlideStatus.TILING):
        slide.status = SlideStatus.FAILED
        if job.storage_wait_since is not None:  # failed waiting for storage, not on the slide itself
            slide.reject_code = STORAGE_UNAVAILABLE
        else:
            slide.reject_code = "tiling_failed" if job.kind == "tile" else "inspection_failed"
        slide.reject_message = (job.error or "processing failed")[:2000]
