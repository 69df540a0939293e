"""Consultation reports: drafting, key views, signing, immutability, new versions, delivery.

Lifecycle of one version (``ReportVersion.status``)::

    draft --sign--> signed --(a newer version is signed)--> superseded

* Drafts are edited by the consultation's assignee with optimistic locking: every update
  names the ``revision`` it was based on; a stale one answers 409 ``report_version_conflict``
  with the current content, so two open editors never overwrite each other silently.
* Signing re-checks the password, renders and PAdES-signs the PDF, then flips the row with
  one conditional ``UPDATE … WHERE id=? AND revision=? AND status='draft'``: of two
  concurrent sign requests exactly one matches a row (SQLite serialises writers, PostgreSQL
  re-evaluates the WHERE after the row lock), the other gets 409.  The consultation then
  moves to reported and the result is returned to the referring centre at once.  Nothing of
  the report is copied onto the consultation: every page reads the result in force from the
  versions (:mod:`pathology_hub.domain.results`).  Reading a report (page, PDF, FHIR) never
  acknowledges it; the clinician acknowledges a version explicitly (``consultations.acknowledge``).
* A signed version is immutable: every change attempt is refused (409 ``report_signed``) and
  audited (``report.edit_refused``).  Changes are new versions: an addendum (adds information;
  the diagnosis must stay as it was) or an amendment (changes the diagnosis; reason required).
  Signing version N+1 marks N superseded and stores an additional signed "superseded copy" of
  N (banner: superseded by N+1), served from then on; the original bytes and hash are kept.
  The chain goes back to "returned" (an acknowledgement of N does not cover N+1) and the
  referring clinician, the centre, the escalating pathologist and whoever acknowledged an
  earlier version are notified, in the app and by e-mail, with the change and its reason.
* A co-signature (another pathologist's concurrence) adds a manifest row and a re-rendered,
  re-signed PDF listing both signatures, kept next to the original (which stays verifiable).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, object_session

from ..models import Annotation, Case, Slide, SlideStatus, User, utcnow
from ..models.consultations import Consultation, ConsultationState as S
from ..models.reports import Report, ReportFigure, ReportSignature, ReportVersion, ResultAcknowledgement
from . import accounts, audit, notifications, policy, report_codes, report_integrity, results, turnaround
from . import report_permissions
from . import consultations as consultations_svc
from . import report_documents as docs
from .errors import AuthenticationFailed, Conflict, DomainError, NotFound, ValidationFailed

TEXT_LIMIT = 20_000
CAPTION_LIMIT = 500
FIELDS = ("specimen", "gross_description", "microscopic_description", "diagnosis", "comment", "recommendations",
          "answer_to_question")
KINDS = ("addendum", "amendment")
DEFAULT_MEANING = "diagnosis approved / 诊断已批准"
COSIGN_MEANING = "concurrence with the diagnosis / 同意该诊断"
MAX_FIGURES = 12


# ---------------------------------------------------------------- errors
class ReportSigned(Conflict):
    """A change to a signed version; the refusal itself has been added to the session's audit trail."""

    code = "report_signed"


ReportIntegrityFailed = report_integrity.ReportIntegrityFailed


class ReportVersionConflict(Conflict):
    code = "report_version_conflict"

    def __init__(self, version: ReportVersion) -> None:
        super().__init__(f"The report was changed elsewhere (now revision {version.revision}); your change was "
                         "not saved. Reload the report and apply your change again.",
                         details={"revision": version.revision, "version": version.number,
                                  "status": version.status, "current": version_json_fields(version)})


class WrongPassword(AuthenticationFailed):
    """Signing needs the signer's own password again; the failed attempt is audited."""

    code = "invalid_password"


class SignerLocked(AuthenticationFailed):
    """Too many wrong passwords (at login or when signing): the account may not sign until the lock ends.

    Same code as the login refusal, so clients need one message for both."""

    code = "account_locked"


def commit_refusal(exc: DomainError) -> bool:
    """Whether the web layer must commit (the audit entry of) this refusal before answering."""
    return isinstance(exc, (ReportSigned, WrongPassword, SignerLocked, report_integrity.ReportIntegrityFailed))


# ---------------------------------------------------------------- policy
def signed_version_exists(session: Session, report_id: int) -> bool:
    return session.scalar(select(ReportVersion.id).where(
        ReportVersion.report_id == report_id, ReportVersion.status.in_(("signed", "superseded"))).limit(1)) is not None


def case_report_signed(case: Case) -> bool:
    """The real "is this case's report signed?" predicate used by the annotation rules."""
    session = object_session(case)
    if session is None:
        return False
    return session.scalar(select(ReportVersion.id).join(Report, Report.id == ReportVersion.report_id).where(
        Report.case_id == case.id, ReportVersion.status.in_(("signed", "superseded"))).limit(1)) is not None



# ---------------------------------------------------------------- reading
def current(report: Report) -> ReportVersion:
    return report.versions[-1]


def latest_signed(report: Report) -> ReportVersion | None:
    signed = [v for v in report.versions if v.status in ("signed", "superseded")]
    return signed[-1] if signed else None


def visible_versions(user: User, report: Report) -> list[ReportVersion]:
    """Drafts are the pathologists' working material; the centre sees signed versions only."""
    if policy.can(user, "report.view_drafts", report):
        return list(report.versions)
    return [v for v in report.versions if v.status != "draft"]


def get(session: Session, user: User, report_id: int) -> Report:
    report = session.get(Report, report_id)
    if report is None:
        raise NotFound("No such report.")
    policy.ensure(user, "report.view", report)
    return report


def for_consultation(session: Session, user: User, c: Consultation) -> Report | None:
    policy.ensure(user, "consultation.view", c)
    report = session.scalar(select(Report).where(Report.consultation_id == c.id))
    if report is None or not policy.can(user, "report.view", report):
        return None
    return report


def version_by_number(user: User, report: Report, number: int) -> ReportVersion:
    for v in visible_versions(user, report):
        if v.number == number:
            return v
    raise NotFound("No such report version.")


def version_json_fields(v: ReportVersion) -> dict[str, Any]:
    data = {name: getattr(v, name) for name in FIELDS}
    data.update({"diagnosis_code": v.diagnosis_code, "diagnosis_code_system": v.diagnosis_code_system,
                 "diagnosis_code_display": v.diagnosis_code_display})
    return data


def record_view(session: Session, user: User, report: Report, *, what: str = "report", ip: str | None = None) -> None:
    audit.record(session, "report.viewed", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"what": what})


# ---------------------------------------------------------------- helpers
def _now(now: dt.datetime | None) -> dt.datetime:
    return now or utcnow()


def _text(value: Any, field: str, limit: int = TEXT_LIMIT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be text.", code="invalid_field", details={"field": field})
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed(f"{field} is longer than {limit} characters.", code="field_too_long",
                               details={"field": field})
    return text


def _refuse(session: Session, user: User, version: ReportVersion, attempted: str, ip: str | None) -> ReportSigned:
    audit.record(session, "report.edit_refused", actor=user, object_type="report", object_id=version.report_id,
                 case_id=version.report.case_id, ip=ip,
                 details={"version": version.number, "status": version.status, "attempted": attempted})
    return ReportSigned(f"Version {version.number} of this report is signed and can no longer be changed; "
                        "write an addendum or an amendment instead.",
                        details={"version": version.number, "status": version.status})


def _editable_draft(session: Session, user: User, report: Report, attempted: str, ip: str | None) -> ReportVersion:
    """The current draft, or an audited refusal when the current version is signed."""
    v = current(report)
    if v.status != "draft":
        raise _refuse(session, user, v, attempted, ip)
    policy.ensure(user, "report.edit", report)
    if report.consultation.state is S.CANCELLED:
        raise Conflict("The consultation was cancelled; its report can no longer be edited.", code="invalid_state",
                       details={"state": report.consultation.state.value})
    return v


def _expected_revision(value: Any) -> int:
    if isinstance(value, bool) or value is None:
        raise ValidationFailed("Send the revision the change is based on (field \"revision\" or an If-Match header).",
                               code="revision_required")
    try:
        return int(str(value).strip().strip('"').removeprefix("W/").strip('"'))
    except ValueError:
        raise ValidationFailed("revision must be an integer.", code="invalid_field",
                               details={"field": "revision"}) from None


def _consultation_root(c: Consultation) -> Consultation:
    while c.parent is not None:
        c = c.parent
    return c


def clinicians_to_notify(session: Session, c: Consultation) -> list[User]:
    """The requesting side of the whole chain: the centre's clinician and technicians, the escalating pathologist."""
    root = _consultation_root(c)
    users = consultations_svc.requester_side(session, root)
    if c is not root:
        users += consultations_svc.requester_side(session, c)
    return users


# ---------------------------------------------------------------- drafting
def create(session: Session, user: User, c: Consultation, *, ip: str | None = None,
           now: dt.datetime | None = None) -> Report:
    """Start the report of a consultation under review (the assignee only)."""
    policy.ensure(user, "consultation.view", c)
    if session.scalar(select(Report.id).where(Report.consultation_id == c.id)) is not None:
        raise Conflict("This consultation already has a report.", code="report_exists")
    policy.ensure(user, "report.create", c)
    if c.state is not S.IN_REVIEW:
        raise Conflict("A report is written while the consultation is in review.", code="invalid_state",
                       details={"state": c.state.value})
    now = _now(now)
    report = Report(consultation_id=c.id, case_id=c.case_id, created_by_id=user.id, created_at=now)
    session.add(report)
    session.flush()
    specimen = ", ".join(p for p in (c.case.specimen_type, c.case.specimen_site) if p)
    session.add(ReportVersion(report_id=report.id, number=1, kind="original", status="draft", revision=1,
                              specimen=specimen, author_id=user.id, created_at=now, updated_at=now))
    session.flush()
    session.refresh(report)
    audit.record(session, "report.created", actor=user, object_type="report", object_id=report.id,
                 case_id=c.case_id, ip=ip, details={"consultation_id": c.id})
    return report


def _clean_update(data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name in data:
            values[name] = _text(data[name], name)
    if "diagnosis_code" in data:
        code = _text(data.get("diagnosis_code"), "diagnosis_code", 32)
        if not code:
            values.update(diagnosis_code="", diagnosis_code_system="", diagnosis_code_display="")
        else:
            found = report_codes.find(code, _text(data.get("diagnosis_code_system"), "diagnosis_code_system", 32))
            if found is None:
                raise ValidationFailed(f"Unknown diagnosis code {code!r}; choose one from the configured list.",
                                       code="unknown_diagnosis_code", details={"field": "diagnosis_code"})
            values.update(diagnosis_code=found.code, diagnosis_code_system=found.system,
                          diagnosis_code_display=found.display)
    return values


def update_draft(session: Session, user: User, report: Report, data: dict[str, Any], *, revision: Any,
                 ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """Autosave: change the draft if it is still at ``revision`` (one conditional UPDATE)."""
    v = _editable_draft(session, user, report, "update", ip)
    expected = _expected_revision(revision)
    values = _clean_update(data)
    now = _now(now)
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "draft")
        .values(**values, revision=ReportVersion.revision + 1, updated_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        if v.status != "draft":
            raise _refuse(session, user, v, "update", ip)
        raise ReportVersionConflict(v)
    audit.record(session, "report.draft_saved", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "revision": v.revision,
                                                         "fields": sorted(values)})
    return v


# ---------------------------------------------------------------- key views
def _num(data: dict[str, Any], name: str, *, positive: bool = False) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationFailed(f"{name} must be a number.", code="invalid_field", details={"field": name})
    if positive and value <= 0:
        raise ValidationFailed(f"{name} must be positive.", code="invalid_field", details={"field": name})
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
    from .. import runtime
    from ..reporting.figures import render_figure
    from .annotations import SlideFrame, palette_color
    v = _editable_draft(session, user, report, "add_figure", ip)
    if len(docs.figures_of(session, v)) >= MAX_FIGURES:
        raise ValidationFailed(f"A report holds at most {MAX_FIGURES} figures.", code="too_many_figures")
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
        from .view_links import normalise_view_link
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


def _bump_draft(session: Session, user: User, v: ReportVersion, attempted: str, now: dt.datetime,
                ip: str | None) -> None:
    """Next revision of a draft, only while it is still a draft (a concurrent signature wins)."""
    result = session.execute(update(ReportVersion).where(ReportVersion.id == v.id, ReportVersion.status == "draft")
                             .values(revision=ReportVersion.revision + 1, updated_at=now)
                             .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        raise _refuse(session, user, v, attempted, ip)


def _pyramid(slide: Slide):
    """The slide's stored pyramid (version 0 is a valid first pyramid, as for the tile endpoints)."""
    from .. import runtime
    from ..tiling.errors import TileNotFound
    from ..tiling.reader import PyramidReader
    from .slides import pyramid_prefix
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


# ---------------------------------------------------------------- signing
def _check_password(session: Session, user: User, report: Report, password: Any, action: str,
                    ip: str | None, now: dt.datetime | None = None) -> None:
    """The signer's password, under the same lock-out as the login (see ``accounts.reserve_password_attempt``).

    A wrong password counts as a failed login; a locked account cannot sign even with the right
    one.  Both refusals are audited (``report.<action>_failed``) without the password itself."""
    if not isinstance(password, str) or not password:
        raise ValidationFailed("Enter your password to sign.", code="password_required", details={"field": "password"})
    now = _now(now)
    limits = accounts.lockout_policy()
    correct, attempt, locked_now = accounts.check_password_limited(session, user, password, limits, now)
    if attempt.locked_minutes:
        audit.record(session, f"report.{action}_failed", actor=user, object_type="report", object_id=report.id,
                     case_id=report.case_id, ip=ip, details={"reason": "account_locked"})
        raise SignerLocked(f"Too many wrong passwords: signing is locked for {attempt.locked_minutes} minutes; "
                           "the report was not signed.", details={"retry_after_minutes": attempt.locked_minutes})
    if not correct:
        audit.record(session, f"report.{action}_failed", actor=user, object_type="report", object_id=report.id,
                     case_id=report.case_id, ip=ip,
                     details={"reason": "wrong password", "failed_attempt": True, "locked_now": locked_now})
        if locked_now:
            minutes = accounts.locked_minutes(user, now)
            raise SignerLocked(f"Too many wrong passwords: signing is locked for {minutes} minutes; "
                               "the report was not signed.", details={"retry_after_minutes": minutes})
        raise WrongPassword("The password is not correct; the report was not signed.")


def _manifest(user: User, role: str, meaning: str, at: dt.datetime) -> ReportSignature:
    return ReportSignature(user_id=user.id, role=role, full_name=user.full_name, institution=user.institution.name,
                           meaning=meaning, signed_at=at, timezone=str(turnaround.timezone()))


def _language(user: User | None) -> str:
    """Labels of the PDF in the signer's language (Chinese unless they chose English)."""
    return "en" if user is not None and (user.locale or "").lower().startswith("en") else "zh"


def _location(user: User) -> str:
    return user.institution.name


def _new_code(session: Session) -> str:
    """20 base32 characters (100 bits): unguessable, and easy to type from a printout."""
    import base64
    while True:
        code = base64.b32encode(secrets.token_bytes(15)).decode().rstrip("=")
        if session.scalar(select(ReportVersion.id).where(ReportVersion.verification_code == code)) is None:
            return code


def sign(session: Session, user: User, report: Report, *, password: Any, revision: Any, meaning: Any = None,
         ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """Sign the current draft (the assignee, with their password); see the module docstring."""
    v = current(report)
    policy.ensure(user, "report.view", report)
    if v.status != "draft":
        raise _refuse(session, user, v, "sign", ip)
    policy.ensure(user, "report.sign", report)
    c = report.consultation
    if v.number == 1 and c.state is not S.IN_REVIEW:
        raise Conflict("The consultation must be in review to sign its report.", code="invalid_state",
                       details={"state": c.state.value})
    expected = _expected_revision(revision)
    if expected != v.revision:
        raise ReportVersionConflict(v)
    _check_password(session, user, report, password, "sign", ip, now)
    if not v.diagnosis.strip():
        raise ValidationFailed("The diagnosis is required before signing.", code="missing_field",
                               details={"field": "diagnosis"})
    previous = report.versions[-2] if len(report.versions) > 1 else None
    if v.kind == "addendum" and previous is not None and (
            v.diagnosis != previous.diagnosis or v.diagnosis_code != previous.diagnosis_code):
        raise ValidationFailed("An addendum adds information and keeps the diagnosis; write an amendment to change "
                               "the diagnosis.", code="addendum_changes_diagnosis", details={"field": "diagnosis"})
    meaning = _text(meaning, "meaning", 200) or DEFAULT_MEANING
    now = _now(now)
    code = _new_code(session)
    signature = _manifest(user, "signer", meaning, now)
    doc = docs.build_document(session, v, signatures=[docs.signature_of(signature)], signed_at=now, signer=user,
                              verification_code=code, language=_language(user),
                              history_overrides={previous.id: {"superseded": True}} if previous else None)
    pdf = docs.render_and_sign(doc, signer_name=user.full_name, reason=meaning, location=_location(user))
    # The decisive step: only one request can move this draft at this revision to "signed".
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "draft")
        .values(status="signed", revision=ReportVersion.revision + 1, signed_at=now, signed_by_id=user.id,
                verification_code=code, updated_at=now)
        .execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        if v.status != "draft":
            raise _refuse(session, user, v, "sign", ip)
        raise ReportVersionConflict(v)
    signature.version_id = v.id
    session.add(signature)
    docs.store_file(session, v, "original", pdf, now=now)
    audit.record(session, "report.signed", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip,
                 details={"version": v.number, "kind": v.kind, "sha256": pdf.sha256, "meaning": meaning})
    if previous is not None:
        _supersede(session, user, previous, v, now=now, ip=ip)
        consultations_svc.result_amended(session, user, c, v, ip=ip, now=now)
        _notify_new_version(session, c, previous, v, user)
    else:
        consultations_svc.mark_reported(session, user, c, ip=ip, now=now)
        consultations_svc.return_result(session, user, c, "", ip=ip, now=now)
        notifications.notify(session, clinicians_to_notify(session, c), "report_signed",
                             results.root_of(c), version=v.number)
    session.flush()
    return v


def _notify_new_version(session: Session, c: Consultation, previous: ReportVersion, v: ReportVersion,
                        signer: User) -> None:
    """Tell everyone who may have acted on the old result: the change and its reason come first."""
    root = results.root_of(c)
    acted = [a.user for a in session.scalars(select(ResultAcknowledgement).where(
        ResultAcknowledgement.consultation_id == root.id))]
    people = [*clinicians_to_notify(session, c), root.created_by, *acted]
    kind = "report_amended" if v.kind == "amendment" else "report_addendum"
    notifications.notify(session, [u for u in people if u is not None and u.id != signer.id], kind, root,
                         version=v.number, previous_version=previous.number, reason=v.reason,
                         previous_diagnosis=previous.diagnosis, diagnosis=v.diagnosis,
                         diagnosis_changed=previous.diagnosis != v.diagnosis
                         or previous.diagnosis_code != v.diagnosis_code,
                         signer=signer.full_name, institution=signer.institution.name)


def _supersede(session: Session, user: User, old: ReportVersion, new: ReportVersion, *, now: dt.datetime,
               ip: str | None) -> None:
    """Mark ``old`` superseded and store its signed "superseded copy" (the original file stays on record)."""
    old.status = "superseded"
    old.superseded_at = now
    old.superseded_by_number = new.number
    old.revision += 1
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, old)]
    doc = docs.build_document(session, old, signatures=sigs, verification_code=old.verification_code or "",
                              superseded_by=new.number, language=_language(old.signed_by),
                              history_overrides={old.id: {"superseded": True},
                                                 new.id: {"signed_at": now, "signer": user.full_name}})
    pdf = docs.render_and_sign(doc, signer_name=user.full_name,
                               reason=f"superseded by version {new.number}", location=_location(user))
    docs.store_file(session, old, "superseded", pdf, now=now)
    audit.record(session, "report.superseded", actor=user, object_type="report", object_id=old.report_id,
                 case_id=old.report.case_id, ip=ip,
                 details={"version": old.number, "superseded_by": new.number, "sha256": pdf.sha256})


def cosign(session: Session, user: User, report: Report, *, password: Any, meaning: Any = None,
           ip: str | None = None, now: dt.datetime | None = None) -> ReportVersion:
    """A second pathologist's concurrence with the current signed version (once per version)."""
    v = report_permissions.ensure_may_cosign(session, user, report)  # the rules, shared with the web's buttons
    _check_password(session, user, report, password, "cosign", ip, now)
    meaning = _text(meaning, "meaning", 200) or COSIGN_MEANING
    now = _now(now)
    row = _manifest(user, "co-signer", meaning, now)
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, v)] + [docs.signature_of(row)]
    doc = docs.build_document(session, v, signatures=sigs, verification_code=v.verification_code or "",
                              language=_language(v.signed_by))
    pdf = docs.render_and_sign(doc, signer_name=user.full_name, reason=meaning, location=_location(user))
    expected = v.revision
    result = session.execute(update(ReportVersion).where(
        ReportVersion.id == v.id, ReportVersion.revision == expected, ReportVersion.status == "signed")
        .values(revision=ReportVersion.revision + 1).execution_options(synchronize_session=False))
    session.refresh(v)
    if result.rowcount != 1:
        raise Conflict("The report changed while co-signing; reload and try again.", code="report_version_conflict")
    row.version_id = v.id
    session.add(row)
    docs.store_file(session, v, "cosigned", pdf, now=now)
    audit.record(session, "report.cosigned", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "sha256": pdf.sha256})
    session.flush()
    return v


def new_version(session: Session, user: User, report: Report, kind: Any, reason: Any, *, ip: str | None = None,
                now: dt.datetime | None = None) -> ReportVersion:
    """Open an addendum or amendment draft on top of the signed report (its content and figures copied)."""
    policy.ensure(user, "report.view", report)
    last = current(report)
    if last.status == "draft":
        raise Conflict(f"Version {last.number} is still a draft; sign or edit it instead.", code="report_draft_exists")
    policy.ensure(user, "report.amend", report)
    if kind not in KINDS:
        raise ValidationFailed("kind must be addendum or amendment.", code="invalid_choice", details={"field": "kind"})
    reason = _text(reason, "reason", 2000)
    if kind == "amendment" and not reason:
        raise ValidationFailed("An amendment needs a reason.", code="missing_field", details={"field": "reason"})
    now = _now(now)
    v = ReportVersion(report_id=report.id, number=last.number + 1, kind=kind, reason=reason, status="draft",
                      revision=1, author_id=user.id, created_at=now, updated_at=now,
                      diagnosis_code=last.diagnosis_code, diagnosis_code_system=last.diagnosis_code_system,
                      diagnosis_code_display=last.diagnosis_code_display,
                      **{name: getattr(last, name) for name in FIELDS})
    session.add(v)
    session.flush()
    for f in docs.figures_of(session, last):
        session.add(ReportFigure(version_id=v.id, slide_id=f.slide_id, position=f.position, caption=f.caption,
                                 view_link=f.view_link, bounds=f.bounds, rotation=f.rotation,
                                 magnification=f.magnification, image_key=f.image_key, sha256=f.sha256,
                                 created_by_id=f.created_by_id, created_at=f.created_at))
    session.flush()
    session.refresh(report)
    audit.record(session, f"report.{kind}_started", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "reason": reason})
    return v


# ---------------------------------------------------------------- delivery
def pdf_of(session: Session, user: User, report: Report, number: int | None = None, *, original: bool = False,
           ip: str | None = None, now: dt.datetime | None = None) -> tuple[bytes, str, ReportVersion]:
    """The signed PDF to hand out (the superseded copy for an old version, unless ``original``).

    Downloading is reading: it is audited and never acknowledges the result.
    """
    if number is None:
        v = latest_signed(report)
        if v is None or v not in visible_versions(user, report):
            raise NotFound("This report has no signed version yet.", code="report_not_signed")
    else:
        v = version_by_number(user, report, number)
        if v.status == "draft":
            raise Conflict("A draft has no signed PDF.", code="report_not_signed")
    files = docs.files_of(session, v)
    chosen = next((f for f in files if f.kind == "original"), None) if original else (files[-1] if files else None)
    if chosen is None:
        raise NotFound("The signed PDF of this version is missing.", code="pdf_missing")
    data = report_integrity.read_verified(session, chosen, report, v, actor=user, purpose="pdf", ip=ip)
    audit.record(session, "report.downloaded", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "file": chosen.kind,
                                                         "sha256": chosen.sha256})
    name = f"report-{report.consultation.case.case_number}-v{v.number}{'-original' if original else ''}.pdf"
    return data, name, v


FHIR_STATUS = {"original": "final", "amendment": "amended", "addendum": "appended"}


def fhir(session: Session, user: User, report: Report, *, ip: str | None = None) -> dict[str, Any]:
    """The latest signed version as an HL7 FHIR R4 DiagnosticReport with the PDF as presentedForm."""
    from ..reporting.fhir import diagnostic_report
    v = latest_signed(report)
    if v is None or v not in visible_versions(user, report):
        raise NotFound("This report has no signed version yet.", code="report_not_signed")
    f = docs.served_file(session, v)
    if f is None:
        raise NotFound("The signed PDF of this version is missing.", code="pdf_missing")
    sigs = [docs.signature_of(s) for s in docs.signatures_of(session, v)]
    doc = docs.build_document(session, v, signatures=sigs, verification_code=v.verification_code or "")
    pdf = report_integrity.read_verified(session, f, report, v, actor=user, purpose="fhir", ip=ip)
    statuses = [FHIR_STATUS[x.kind] for x in report.versions if x.status in ("signed", "superseded")]
    status = "final" if len(statuses) == 1 else FHIR_STATUS[v.kind]
    resource = diagnostic_report(doc, report_id=report.id, status=status, pdf=pdf,
                                 pdf_url=docs.view_url(f"/api/v1/reports/{report.id}/versions/{v.number}/pdf"),
                                 issued=docs.local_time(v.signed_at))
    audit.record(session, "report.fhir_exported", actor=user, object_type="report", object_id=report.id,
                 case_id=report.case_id, ip=ip, details={"version": v.number, "status": status})
    return resource


# ---------------------------------------------------------------- public verification
def verify(session: Session, code: str) -> dict[str, Any] | None:
    """What the public verification page may say about a code: no clinical content, no patient data."""
    code = (code or "").strip().upper().replace(" ", "").replace("-", "")
    if not code or len(code) > 40:
        return None
    v = session.scalar(select(ReportVersion).where(ReportVersion.verification_code == code))
    if v is None:
        return None
    report = v.report
    checks = [docs.check_file(f) for f in docs.files_of(session, v)]
    ok = bool(checks) and all(c.ok for c in checks)
    sigs = docs.signatures_of(session, v)
    latest = latest_signed(report)
    return {
        "code": code, "result": "valid" if ok else "failed", "valid": ok,
        "version": v.number, "kind": v.kind, "status": v.status,
        "superseded": v.status == "superseded", "superseded_by": v.superseded_by_number,
        "superseded_at_text": f"{docs.local_time(v.superseded_at):%Y-%m-%d %H:%M:%S}" if v.superseded_at else None,
        "latest_version": latest.number if latest else v.number,
        "institution": report.consultation.receiving_institution.name if report.consultation.receiving_institution else "",
        "signatures": [{"role": s.role, "full_name": s.full_name, "institution": s.institution, "meaning": s.meaning,
                        "signed_at": docs.local_time(s.signed_at).replace(microsecond=0).isoformat(),
                        "signed_at_text": f"{docs.local_time(s.signed_at):%Y-%m-%d %H:%M:%S}", "timezone": s.timezone}
                       for s in sigs],
        "files": [{"kind": c.kind, "hash_ok": c.hash_ok, "signature_intact": c.intact, "signature_valid": c.valid}
                  for c in checks],
    }
