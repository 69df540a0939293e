"""What a technician may still change about a slide before the case is submitted.

* **Stain and block/part label.**  A controlled stain category (``StainCategory``) plus the
  marker or stain name as free text (IHC + "Ki-67"), and the block/part label ("A1").
* **Withdrawal.**  A rejected, failed or unwanted slide is taken off the case: the row stays
  (status ``withdrawn``, ``deleted_at`` set, so every listing, count and policy check that
  skips deleted slides skips it too) and is audited.  Its stored objects are *not* deleted at
  once: they follow the retention rule below.
* **Duplicates.**  Originals are stored by SHA-256, so "this file is already a slide of the
  case" is a lookup of a live slide with that original.

When a slide is *locked*: once a consultation request on its case was submitted (or an
information request was answered) after the slide was added, or while a request is with
the pathologists (any state but draft, information requested and cancelled), someone
outside the centre may have read it, so its facts are read-only and it cannot be withdrawn
(409 ``slide_locked``).  Slides added to answer an information request stay editable until
the answer is sent.  A rejected or failed slide never had an image to read and can always be
withdrawn.

Retention (the storage design keeps objects until nothing references them): a withdrawn
slide's pyramid, derived images and, when no other slide still references it, its original
are deleted by :func:`purge_withdrawn` once ``purge_after`` (withdrawal time plus
``WITHDRAWN_SLIDE_RETENTION_DAYS``) has passed.  Until then an administrator can still
restore the objects by hand, and the audit trail points at them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from storage.base import ObjectStore
from storage.errors import ObjectNotFound

from ..models import Case, Slide, SlideStatus, StainCategory, StoredOriginal, User, utcnow
from ..models.consultations import Consultation, ConsultationEvent, ConsultationState
from ..tiling import layout
from . import audit, policy, unit_of_work
from .errors import Conflict, NotFound, ValidationFailed

STAIN_NAME_MAX = 64
BLOCK_LABEL_MAX = 32
REASON_MAX = 500
#: Letters (any script), digits, spaces and the punctuation marker names use: Ki-67, HER2/neu, CD3+CD8, PD-L1 (22C3)
_STAIN_NAME_RE = re.compile(r"^[\w +\-/().,&:#%αβγδκλ]+$")
_BLOCK_LABEL_RE = re.compile(r"^[\w\-./ ]+$")
_HE_NAMES = {"he", "h&e", "h e", "handE".lower(), "h and e"}
#: Transitions after which the slides present at that moment have left the centre.
_SHARING_TRANSITIONS = ("submit", "answer_info")
#: Request states in which the centre holds the case: draft, answering an information request, cancelled.
_CENTRE_STATES = (ConsultationState.DRAFT, ConsultationState.INFO_REQUESTED, ConsultationState.CANCELLED)
#: Statuses that never produced a viewable image: withdrawing them hides nothing anyone read.
UNVIEWED = (SlideStatus.REJECTED, SlideStatus.FAILED)
#: The stored values of the stain categories, in the models' order (the web names each one).
STAIN_CATEGORIES: tuple[str, ...] = tuple(c.value for c in StainCategory)


class SlideLocked(Conflict):
    code = "slide_locked"


# ---------------------------------------------------------------- stain
def category_of(slide: Slide) -> StainCategory | None:
    """The stored category, or the one read from a legacy/free-text stain ("H&E" only)."""
    if slide.stain_category is not None:
        return slide.stain_category
    return StainCategory.HE if is_he(slide.stain) else None


def is_he(name: str | None) -> bool:
    return re.sub(r"\s+", " ", (name or "").strip().lower()) in _HE_NAMES


def stain_name(slide: Slide) -> str:
    """The marker/stain name without the category ("" for plain H&E)."""
    return "" if category_of(slide) is StainCategory.HE and is_he(slide.stain) else (slide.stain or "")


def _clean_text(value: Any, field: str, limit: int, pattern: re.Pattern[str], *, required: bool) -> str:
    text = unicodedata.normalize("NFC", "" if value is None else str(value)).strip()
    text = re.sub(r"\s+", " ", text)
    if not text:
        if required:
            raise ValidationFailed("%(field)s is required for this stain category.", code="missing_field",
                                   details={"field": field})
        return ""
    if len(text) > limit:
        raise ValidationFailed("%(field)s is longer than %(max)s characters.", code="field_too_long",
                               details={"field": field, "max": limit})
    if not pattern.match(text):
        raise ValidationFailed("%(field)s contains characters that are not allowed.", code="invalid_characters",
                               details={"field": field})
    return text


@dataclass(frozen=True)
class SlideFacts:
    stain_category: StainCategory
    stain: str
    block_label: str


def parse_facts(slide: Slide, data: dict[str, Any]) -> SlideFacts:
    """Validate a change; fields left out keep their current value."""
    raw_cat = data.get("stain_category", category_of(slide).value if category_of(slide) else None)
    try:
        category = StainCategory(str(raw_cat or "").strip().lower())
    except ValueError:
        raise ValidationFailed("%(field)s must be one of: %(allowed)s.", code="invalid_stain_category",
                               details={"field": "stain_category"},
                               params={"allowed": ", ".join(c.value for c in StainCategory)}) from None
    name_given = "stain" in data
    name = data.get("stain") if name_given else stain_name(slide)
    name = _clean_text(name, "stain", STAIN_NAME_MAX, _STAIN_NAME_RE,
                       required=category in (StainCategory.IHC, StainCategory.SPECIAL))
    if category is StainCategory.HE:
        name = name if name and not is_he(name) else "H&E"
    elif is_he(name):
        raise ValidationFailed("H&E is not a marker of this category; choose the H&E category.",
                               code="invalid_stain_name", details={"field": "stain"})
    block = data.get("block_label") if "block_label" in data else slide.block_label
    block = _clean_text(block, "block_label", BLOCK_LABEL_MAX, _BLOCK_LABEL_RE, required=False)
    return SlideFacts(category, name, block)


# ---------------------------------------------------------------- locking
def locked(session: Session, slide: Slide) -> bool:
    """True once the slide was part of a submission (or of an answer to an information request),
    or while a request on the case is with the pathologists (anything they can open stays as they saw it)."""
    shared = exists().where(
        ConsultationEvent.consultation_id == Consultation.id, Consultation.case_id == slide.case_id,
        ConsultationEvent.transition.in_(_SHARING_TRANSITIONS), ConsultationEvent.at >= slide.created_at)
    with_pathologists = exists().where(Consultation.case_id == slide.case_id,
                                       Consultation.state.not_in(_CENTRE_STATES))
    return bool(session.scalar(select(shared | with_pathologists)))


def can_edit(session: Session, user: User, slide: Slide) -> bool:
    """Offered on the case page (a rejected file has nothing to label: it is withdrawn instead)."""
    return policy.can(user, "slide.edit", slide) and slide.status not in UNVIEWED and not locked(session, slide)


def can_withdraw(session: Session, user: User, slide: Slide) -> bool:
    return policy.can(user, "slide.withdraw", slide) and (slide.status in UNVIEWED or not locked(session, slide))


def _live(slide: Slide) -> None:
    if slide.deleted_at is not None:
        raise NotFound("No such slide.")


# ---------------------------------------------------------------- changes
def update_facts(session: Session, user: User, slide: Slide, data: dict[str, Any], *,
                 ip: str | None = None) -> dict[str, dict[str, str]]:
    """Set stain category, stain name and block label; returns the audited changes."""
    _live(slide)
    policy.ensure(user, "slide.edit", slide)
    if locked(session, slide):
        raise SlideLocked("The slide was submitted for consultation; its stain and block can no longer be changed.",
                          details={"slide_id": slide.id})
    facts = parse_facts(slide, data)
    before = {"stain_category": category_of(slide).value if category_of(slide) else "", "stain": slide.stain,
              "block_label": slide.block_label or ""}
    after = {"stain_category": facts.stain_category.value, "stain": facts.stain, "block_label": facts.block_label}
    changes = {k: {"from": before[k], "to": after[k]} for k in after if before[k] != after[k]}
    slide.stain_category, slide.stain, slide.block_label = facts.stain_category, facts.stain, facts.block_label
    if changes:
        audit.record(session, "slide.update", actor=user, object_type="slide", object_id=slide.id,
                     case_id=slide.case_id, ip=ip, details={"changes": changes})
    return changes


def withdrawn_marker(uid: str) -> str:
    """The object whose presence tells tile readers that the slide was withdrawn."""
    return layout.withdrawn_marker(uid)


def withdraw(session: Session, user: User, slide: Slide, reason: Any = "", *, retention_days: int,
             ip: str | None = None, now: dt.datetime | None = None) -> None:
    """Take the slide off its case (kept for the audit trail); objects wait for the retention period."""
    _live(slide)
    policy.ensure(user, "slide.withdraw", slide)
    if slide.status not in UNVIEWED and locked(session, slide):
        raise SlideLocked("The slide was submitted for consultation and can no longer be withdrawn.",
                          details={"slide_id": slide.id})
    text = re.sub(r"\s+", " ", "" if reason is None else str(reason)).strip()
    if len(text) > REASON_MAX:
        raise ValidationFailed("%(field)s is longer than %(max)s characters.", code="field_too_long",
                               details={"field": "reason", "max": REASON_MAX})
    now = now or utcnow()
    previous = slide.status
    # Every web process stops serving its tiles (readers check this marker), while the objects
    # themselves wait for the retention period. Written first: storage down means nothing changes.
    from .. import runtime
    runtime.store().put_bytes(withdrawn_marker(slide.uid), b"withdrawn\n", content_type="text/plain")
    slide.status = SlideStatus.WITHDRAWN
    slide.deleted_at = now
    slide.withdrawn_by_id = user.id
    slide.withdraw_reason = text
    slide.purge_after = now + dt.timedelta(days=max(0, retention_days))
    audit.record(session, "slide.withdraw", actor=user, object_type="slide", object_id=slide.id,
                 case_id=slide.case_id, ip=ip,
                 details={"label": slide.label, "previous_status": previous.value, "reason_given": bool(text),
                          "purge_after": slide.purge_after.isoformat()})


def purge_withdrawn(session: Session, store: ObjectStore, now: dt.datetime | None = None) -> list[int]:
    """Delete the objects of withdrawn slides whose retention period is over (idempotent)."""
    from .slides import slide_prefix
    now = now or utcnow()
    due = list(session.scalars(select(Slide).where(Slide.status == SlideStatus.WITHDRAWN, Slide.purged_at.is_(None),
                                                   Slide.purge_after <= now).order_by(Slide.id)))
    done = []
    for slide in due:
        store.delete_prefix(layout.slide_pyramids_prefix(slide.uid))
        store.delete_prefix(slide_prefix(slide) + "/")
        # The original is shared by content: keep it while any other slide still needs it.
        others = session.scalar(select(func.count(Slide.id)).where(
            Slide.original_id == slide.original_id, Slide.id != slide.id, Slide.purged_at.is_(None)))
        if not others and slide.original is not None:
            try:
                store.delete(slide.original.storage_key)
            except ObjectNotFound:
                pass
        slide.purged_at = now
        audit.record(session, "slide.purge", actor_name="system", object_type="slide", object_id=slide.id,
                     case_id=slide.case_id, details={"original_deleted": not others})
        session.commit()
        done.append(slide.id)
    return done


# ---------------------------------------------------------------- reading
def duplicates(session: Session, case: Case, sha256: str) -> list[Slide]:
    """Live slides of the case made from a file with this SHA-256."""
    return list(session.scalars(select(Slide).join(StoredOriginal, Slide.original_id == StoredOriginal.id).where(
        Slide.case_id == case.id, Slide.deleted_at.is_(None), StoredOriginal.sha256 == sha256).order_by(Slide.id)))


def duplicate_of(session: Session, slide: Slide) -> list[Slide]:
    """Earlier live slides of the same case with the same original (same file)."""
    if slide.original_id is None:
        return []
    return list(session.scalars(select(Slide).where(
        Slide.case_id == slide.case_id, Slide.original_id == slide.original_id, Slide.id < slide.id,
        Slide.deleted_at.is_(None)).order_by(Slide.id)))


def blocking(case: Case) -> list[dict[str, Any]]:
    """Why each slide stops a submission: not ready, with its reject/failure code."""
    return [{"slide_id": s.id, "label": s.label, "filename": s.original_filename, "status": s.status.value,
             "reason_code": s.reject_code or s.status.value}
            for s in case.slides if s.status is not SlideStatus.READY]


# ---------------------------------------------------------------- units of work for the web
# Each owns its unit of work (see ``unit_of_work``): a handler calls one and holds no session.
def live_slide_of_case(case_id: int, slide_id: int) -> Slide:
    """A slide that is still on this case; NotFound otherwise (a withdrawn slide included)."""
    slide = unit_of_work.get(Slide, slide_id)
    if slide is None or slide.case_id != case_id or slide.deleted_at is not None:
        raise NotFound("No such slide.")
    return slide


def withdraw_slide(user: User, slide: Slide, reason: Any = "", *, retention_days: int,
                   ip: str | None = None) -> None:
    """:func:`withdraw`, committed."""
    with unit_of_work.transaction() as session:
        withdraw(session, user, slide, reason, retention_days=retention_days, ip=ip)


def change_facts(user: User, slide: Slide, data: dict[str, Any], *, ip: str | None = None) -> dict[str, dict[str, str]]:
    """:func:`update_facts`, committed; returns the audited changes."""
    with unit_of_work.transaction() as session:
        return update_facts(session, user, slide, data, ip=ip)
