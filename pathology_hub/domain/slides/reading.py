"""What the web asks about slides, each question one unit of work: find a slide, the state a
user sees it in (job, duplicates, allowed actions), a case's slides and unfinished uploads,
and the slides of a case a viewer can open.

The rules stay in :mod:`.status`, :mod:`..slide_facts` and :mod:`..policy`; these functions
run them in the current unit of work (see :mod:`..unit_of_work`) so a handler holds no session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from pathology_hub.domain import audit, policy, slide_facts, unit_of_work
from pathology_hub.domain.errors import NotFound
from pathology_hub.domain.slides.status import latest_job, retry_slide
from pathology_hub.models import Case, Job, Slide, SlideStatus, Upload, UploadState, User

#: Statuses with a pyramid to look at (being built or complete).
VIEWABLE = (SlideStatus.TILING, SlideStatus.READY)
#: States in which a slide with only the uploader's preview (preview_level set) can be opened.
PREVIEW_VIEWABLE = (SlideStatus.INSPECTING, SlideStatus.TILING)


def is_viewable(slide: Slide) -> bool:
    """Tiled (or tiling), or showing the uploader's coarse preview while the original arrives."""
    return slide.status in VIEWABLE or (slide.preview_level is not None and slide.status in PREVIEW_VIEWABLE)
#: Uploads a case page lists beside its slides: those that failed or have not become a slide yet.
_UNFINISHED_UPLOADS = (UploadState.FAILED, UploadState.RECEIVING, UploadState.STORING)


@dataclass(frozen=True)
class SlideState:
    """A slide as one user sees it: its latest job and what the user may do with it."""

    job: Job | None
    duplicate_of: list[Slide] = field(default_factory=list)
    can_edit: bool = False
    can_withdraw: bool = False
    can_retry: bool = False
    viewable: bool = False


@dataclass(frozen=True)
class CaseSlides:
    slides: list[Slide]
    uploads: list[Upload]


def find_slide(slide_id: int) -> Slide | None:
    """The slide with this id, or None (unchecked: ``authorize`` applies the policy next)."""
    return unit_of_work.get(Slide, slide_id)


def slide_with_uid(uid: str) -> Slide | None:
    return unit_of_work.current().scalar(select(Slide).where(Slide.uid == uid))


def slide_state(user: User, slide: Slide) -> SlideState:
    session = unit_of_work.current()
    return SlideState(job=latest_job(session, slide), duplicate_of=slide_facts.duplicate_of(session, slide),
                      can_edit=slide_facts.can_edit(session, user, slide),
                      can_withdraw=slide_facts.can_withdraw(session, user, slide),
                      can_retry=slide.status is SlideStatus.FAILED and policy.can(user, "slide.retry", slide),
                      viewable=is_viewable(slide))


def case_slides(case: Case, *, sha256: str | None = None) -> CaseSlides:
    """The case's slides and its unfinished uploads, newest upload first; with ``sha256`` only the
    live slides made from that file ("is it already a slide of the case?", asked before uploading)."""
    session = unit_of_work.current()
    if sha256 is not None:
        return CaseSlides(slide_facts.duplicates(session, case, sha256), [])
    uploads = session.scalars(select(Upload).where(Upload.case_id == case.id, Upload.state.in_(
        _UNFINISHED_UPLOADS)).order_by(Upload.created_at.desc()))
    return CaseSlides(list(case.slides), list(uploads))


def viewable_slides(case: Case) -> list[Slide]:
    return [s for s in case.slides if is_viewable(s)]


def retry(user: User, slide_id: int, *, ip: str | None = None) -> Slide:
    """Send the failed slide through processing again (see :func:`.status.retry_slide`)."""
    with unit_of_work.transaction() as session:
        slide = session.get(Slide, slide_id)
        if slide is None:
            raise NotFound("Not found.")
        retry_slide(session, user, slide, ip=ip)
        return slide


def record_slides_viewed(user: User, case: Case, *, ip: str | None = None) -> None:
    """The audit entry of opening the case's slides in the viewer."""
    with unit_of_work.transaction() as session:
        audit.record(session, "case.view_slides", actor=user, object_type="case", object_id=case.id,
                     case_id=case.id, ip=ip)
