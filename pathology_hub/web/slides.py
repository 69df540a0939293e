"""Slides: status API, thumbnails and associated images, Deep Zoom tiles, the viewer page.

Tile requests are the hot path: with a valid tile token they are answered from
the object store without touching the database (see domain/tile_access.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from flask import (Blueprint, Flask, Response, current_app, flash, g, jsonify, redirect, render_template, request,
                   session, url_for)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from storage.errors import ObjectNotFound

from .. import runtime
from ..domain import cases as case_service
from ..domain import jobs, policy, slide_facts
from ..domain import slides as slide_service
from ..domain.slides import preview as preview_service
from ..domain import slide_identity, tile_access, tile_render
from ..domain.upload_status import UploadStatus
from ..domain.upload_status import upload_status_for
from ..domain.errors import Conflict, Forbidden, NotFound, NotReadyYet, ValidationFailed
from ..tiling import TileNotFound, TileNotReady
from .tile_fastpath import TileFastPath, forget_reader, reader_for, tile_etag, tile_headers
from . import view_audit_hook
from .authz import authorize, load_model, me
from .security import client_ip
from .bundle_strings import viewer_strings
from . import error_messages, ingest_text, slide_text
from .errors import flash_error
from .serializers import iso
from .live import viewer_config as live_viewer_config

if TYPE_CHECKING:
    from ..models import Case, Slide

bp = Blueprint("slides", __name__)
_slide = load_model(slide_service.find_slide, "slide_id")
_case = load_model(case_service.find_case, "case_id")
UID_RE = re.compile(r"^[0-9a-f]{32}$")



def _session_token() -> str | None:
    return session.get("_user_id")


def tile_token(slide: Slide) -> str:
    return tile_access.make_token(current_app.config["SECRET_KEY"], slide.uid, slide.pyramid_version,
                                  _session_token() or "")


# ---------------------------------------------------------------- status in words
def reject_text(slide: Slide) -> str | None:
    """Why the slide failed, in the user's language where the reason is ours (not the file's)."""
    if slide.reject_code == slide_service.STORAGE_UNAVAILABLE:
        return _("Object storage was unreachable for too long, so processing stopped. "
                 "Nothing was lost: retry the slide once storage is back.")
    detail = ingest_text.reject_detail(slide)  # what was found, in the user's language
    if detail:
        return detail
    # the ingest's own message is detailed English; other languages read the catalogue's reason
    if slide.reject_code in slide_text.REJECT_LABELS and not str(get_locale() or "").startswith("en"):
        return slide_text.reason_label(slide.reject_code)
    return slide.reject_message


def storage_wait_json(job) -> dict | None:
    wait = slide_service.storage_wait(job)
    if wait is None:
        return None
    return {"since": iso(wait["since"]), "next_attempt_at": iso(wait["next_attempt_at"]),
            "message": _("Waiting for object storage, which is unreachable; processing resumes by itself "
                         "when it is back. Nothing is lost.")}


# ---------------------------------------------------------------- JSON: slides of a case
def slide_json(slide: Slide, *, with_urls: bool = True) -> dict:
    desc = slide_service.description_of(slide)
    state = slide_service.slide_state(me(), slide)
    job = state.job
    data = {
        "id": slide.id, "uid": slide.uid, "case_id": slide.case_id, "label": slide.label, "stain": slide.stain,
        "filename": slide.original_filename, "status": slide.status.value,
        "reject_code": slide.reject_code, "reject_message": reject_text(slide),
        "reject_detail": ingest_text.reject_detail(slide),
        "content": (content := slide_service.content_of(slide)), "content_label": ingest_text.content_label(content),
        "waiting_for_storage": storage_wait_json(job),
        "retry_url": url_for("slides.retry", slide_id=slide.id) if state.can_retry else None,
        "created_at": iso(slide.created_at), "pyramid_version": slide.pyramid_version,
        "sha256": slide.original.sha256 if slide.original else None,
        "size": slide.original.size if slide.original else None,
        "width": desc.get("width"), "height": desc.get("height"), "level_count": desc.get("level_count"),
        "mpp": desc.get("mpp_x"), "objective_power": desc.get("objective_power"), "vendor": desc.get("vendor"),
        "format": desc.get("format"), "scan_date": desc.get("scan_date"),
        "stain_category": cat.value if (cat := slide_facts.category_of(slide)) else None,
        "stain_name": slide_facts.stain_name(slide), "stain_display": slide_text.stain_display(slide),
        "block_label": slide.block_label or "",
        "reason": slide_text.reason_label(slide.reject_code) if slide.reject_code else None,
        "duplicate_of": [{"id": d.id, "label": d.label} for d in state.duplicate_of],
        "actions": {"edit": state.can_edit, "withdraw": state.can_withdraw},
        # only the uploader's coarse levels so far (domain/slides/preview.py): say so, and how far one may zoom
        "preview": preview_service.preview_of(slide),
        "quality": slide_service.quality_of(slide) or None,
        "progress": jobs.progress_of(job) if job is not None else {},
        "job": {"kind": job.kind, "state": job.state.value, "attempts": job.attempts, "error": job.error}
        if job is not None else None,
    }
    if with_urls and state.viewable:
        token = tile_token(slide)
        # who this session is and which slide the uid is, for the sampled view audit of tiles
        view_audit_hook.remember(_session_token(), getattr(current_user, "id", None), slide)
        base = url_for("slides.dzi", uid=slide.uid, version=slide.pyramid_version)
        data["dzi_url"] = f"{base}?t={token}"
        data["thumbnail_url"] = url_for("slides.thumbnail", slide_id=slide.id)
        data["viewer_url"] = url_for("slides.viewer", case_id=slide.case_id, slide=slide.id)
        data["channels"] = channels_json(slide, desc, token)
    if with_urls and slide.status.value == "ready":
        data["dicom_url"] = url_for("dicom_export.export_dicom", slide_id=slide.id)
    return data


def channels_json(slide: Slide, desc: dict, token: str) -> list[dict]:
    """A fluorescence/multiplex slide's channels for the viewer: name, colour, the stored window
    (file sample values the 8-bit tiles span) and each channel's own Deep Zoom descriptor, served
    with the slide's tile authorisation. Empty for bright-field slides."""
    out = []
    for ch in desc.get("channels") or []:
        try:
            k = int(ch["index"])
        except (KeyError, TypeError, ValueError):
            continue
        base = url_for("slides.channel_dzi", uid=slide.uid, version=slide.pyramid_version, channel=k)
        out.append({"index": k, "name": str(ch.get("name") or k + 1), "colour": str(ch.get("colour") or "ffffff"),
                    "window": ch.get("window"), "dzi_url": f"{base}?t={token}"})
    return out


@bp.route("/api/v1/cases/<int:case_id>/slides")
@authorize("case.view", load=_case, as_arg="case")
def case_slides(case: Case):
    """Slides and uploads of a case with processing status.
    ---
    get:
      summary: List a case's slides (status, progress, quality warnings, stain, allowed actions) and its failed uploads
      parameters:
        - {name: sha256, in: query, schema: {type: string}, description: only the live slides made from a file with this SHA-256 (duplicate check before uploading)}
    """
    sha256 = request.args.get("sha256")
    # "is this file already a slide of the case?" asked before any byte is sent
    if sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValidationFailed("sha256 must be 64 lower-case hex digits.", code="invalid_sha256")
    listing = slide_service.case_slides(case, sha256=sha256)
    return jsonify({"slides": [slide_json(s) for s in listing.slides],
                    "uploads": [{"id": u.id, "filename": u.filename, "state": u.state.value, "size": u.size,
                                 "error_code": u.error_code, "error_message": u.error_message}
                                for u in listing.uploads]})


@bp.route("/api/v1/slides/<int:slide_id>")
@authorize("slide.view", load=_slide, as_arg="slide")
def slide_detail(slide: Slide):
    """One slide with metadata, quality report and tiling progress.
    ---
    get:
      summary: Get a slide
    """
    data = slide_json(slide)
    desc = slide_service.description_of(slide)
    names = [n for n in desc.get("associated_images", [])
             if n != "label" or policy.can(me(), "slide.view_label", slide)]
    data["associated_images"] = [{"name": n, "url": url_for("slides.associated", slide_id=slide.id, name=n)}
                                 for n in names]
    data["properties"] = slide_identity.visible_properties(me(), slide, desc.get("properties", {}))
    return jsonify(data)


@bp.route("/api/v1/slides/<int:slide_id>", methods=["DELETE"])
@authorize("slide.withdraw", load=_slide, as_arg="slide")
def delete_slide(slide: Slide):
    """Withdraw a slide from its case (same as POST .../withdraw): the record is kept for audit, its
    objects are deleted after the retention period; 409 slide_locked once submitted.
    ---
    delete:
      summary: Withdraw (delete) a slide
      parameters:
        - {name: reason, in: query, schema: {type: string}}
      responses:
        204: {description: withdrawn}
    """
    from .slide_edits import withdraw_now
    withdraw_now(slide, request.args.get("reason", ""))
    return Response(status=204)


def _retry(slide_id: int) -> Slide:
    """Retry through the domain, with its refusals worded in the user's language."""
    try:
        return slide_service.retry(me(), slide_id, ip=client_ip())
    except Forbidden as exc:
        if exc.code != "retry_not_allowed":
            raise
        raise Forbidden(_("Only a technician of the slide's centre or an administrator can retry it."),
                        code=exc.code) from None
    except Conflict as exc:
        raise Conflict(_("Only a slide whose processing failed can be retried."), code=exc.code) from None


@bp.route("/api/v1/slides/<int:slide_id>/retry", methods=["POST"])
def retry(slide_id: int):
    """Retry a slide whose inspection or tiling failed (technician of its centre, or admin).
    ---
    post:
      summary: Retry a failed slide
      description: >-
        Runs the stage that failed again (tiling resumes from the packs already stored).
        No request body. Audited as `slide.retry`.
      responses:
        202: {description: "processing restarted; the slide as in GET /api/v1/slides/{slide_id} (status inspecting or tiling)"}
        403: {description: "`retry_not_allowed`: only a technician of the slide's centre or an administrator may retry", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        404: {description: "`not_found`: no such slide, or not visible to you", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        409: {description: "`slide_not_failed`: the slide is not in state failed (nothing to retry)", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    """
    return jsonify(slide_json(_retry(slide_id))), 202


@bp.route("/slides/<int:slide_id>/retry", methods=["POST"])
def retry_form(slide_id: int):
    """The case page's Retry button (form post with CSRF token); back to the case page."""
    try:
        slide = _retry(slide_id)
    except (Forbidden, Conflict) as exc:
        slide = slide_service.find_slide(slide_id)
        if not policy.can(me(), "case.view", slide.case):
            raise
        flash_error(exc)
        return redirect(url_for("cases.detail", case_id=slide.case_id))
    flash(_("Slide %(label)s is being processed again.", label=slide.label), "success")
    if policy.can(me(), "case.view", slide.case):
        return redirect(url_for("cases.detail", case_id=slide.case_id))
    return redirect(url_for("main.home"))


@bp.route("/api/v1/slides/<int:slide_id>/thumbnail.jpg")
@authorize("slide.view", load=_slide, as_arg="slide")
def thumbnail(slide: Slide):
    """The slide's thumbnail (JPEG).
    ---
    get:
      summary: Slide thumbnail
    """
    return _image(slide_service.thumbnail_key(slide), "image/jpeg")


@bp.route("/api/v1/slides/<int:slide_id>/associated/<name>.png")
@authorize("slide.view", load=_slide, as_arg="slide")
def associated(slide: Slide, name: str):
    """An associated image (label, macro, thumbnail); the label only for those allowed to see it.
    ---
    get:
      summary: Associated image
    """
    if name not in slide_service.description_of(slide).get("associated_images", []):
        raise NotFound("No such associated image.")
    if name == "label" and not policy.can(me(), "slide.view_label", slide):
        raise NotFound("No such associated image.")
    return _image(slide_service.associated_key(slide, name), "image/png")


def _image(key: str, mime: str) -> Response:
    data = runtime.store().get_bytes(key)
    resp = Response(data, mimetype=mime)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.route("/api/v1/upload-status/<upload_id>")
def upload_status(upload_id: str):
    """What became of a finished upload: still processing, ready, or rejected with the reason.
    ---
    get:
      summary: Processing status of the slide made from a tus upload
    """
    st = upload_status_for(me(), current_app.extensions["tus_server"]().staging, upload_id)
    upload, slide = st.upload, st.slide
    if st.status == "failed" and slide is None:
        return jsonify({"status": "failed", "error": {"code": upload.error_code, "message": error_messages.render(
            upload.error_code or "upload_failed", upload.error_message or "")}})
    if slide is None:
        return jsonify(_unfinished_status(st))
    body = {"status": st.status, "slide_id": slide.id, "slide_status": slide.status.value,
            "waiting_for_storage": storage_wait_json(st.job)}
    if slide.reject_message:
        body["error"] = {"code": slide.reject_code, "message": reject_text(slide)}
    return jsonify(body)


_UNFINISHED_WORDS = {
    "waiting_for_storage": lambda: _("All of the file arrived and is kept safely; waiting for storage to take it. "
                                     "It finishes by itself."),
    "storing_now": lambda: _("All of the file arrived; storing it now."),
    "receiving": lambda: _("Waiting for the rest of the file."),
    "cancelled": lambda: _("This upload was removed."),
    "expired": lambda: _("This upload expired before all of the file arrived."),
}


def _unfinished_status(st: UploadStatus) -> dict:
    """Where an upload without a slide stands (see domain/upload_status.py), in the user's words."""
    body: dict = {"status": st.status, "received_bytes": st.received_bytes, "size": st.upload.size}
    if st.detail == "waiting_for_storage":
        body["waiting_for"] = "storage"
    elif st.detail == "storing_now":
        body["waiting_for"] = None
    if st.detail in _UNFINISHED_WORDS:
        body["message"] = _UNFINISHED_WORDS[st.detail]()
    return body


# ---------------------------------------------------------------- Deep Zoom
def _authorise_tiles(uid: str, version: int) -> None:
    """Token fast path; otherwise the full policy check through the database."""
    if not UID_RE.match(uid):
        raise NotFound("Not found.")
    if tile_access.check_token(current_app.config["SECRET_KEY"], request.args.get("t"), uid, version,
                               _session_token()) and current_app.extensions["session_liveness"].is_live(
                                   _session_token()):
        return
    if not current_user.is_authenticated:
        raise NotFound("Not found.")
    slide = slide_service.slide_with_uid(uid)
    if slide is None or slide.pyramid_version != version:
        raise NotFound("Not found.")
    policy.ensure(me(), "slide.view", slide)
    g.tile_viewer = (me().id, slide)
    view_audit_hook.remember(_session_token(), me().id, slide)


def _note_view(uid: str, level: int) -> None:
    """Sampled view audit of a tile served by this endpoint (in memory; see view_audit_hook)."""
    viewer = g.get("tile_viewer")
    if viewer is not None:
        view_audit_hook.on_tile_known(viewer[0], viewer[1], level)
    elif _session_token():
        view_audit_hook.on_tile(_session_token(), level, uid)


@bp.route("/api/v1/tiles/<uid>/v<int:version>/slide.dzi")
def dzi(uid: str, version: int):
    """Deep Zoom descriptor of a slide's pyramid (token or session).
    ---
    get:
      summary: DZI descriptor
    """
    _authorise_tiles(uid, version)
    try:
        xml = reader_for(uid, version).dzi_xml()
    except (TileNotFound, ObjectNotFound):
        forget_reader(uid)
        raise NotFound("The slide has no pyramid yet.") from None
    resp = Response(xml, mimetype="application/xml")
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


@bp.route("/api/v1/tiles/<uid>/v<int:version>/slide_files/<int:level>/<int:col>_<int:row>.jpeg")
def tile(uid: str, version: int, level: int, col: int, row: int):
    """One JPEG tile; immutable per pyramid version.
    ---
    get:
      summary: Deep Zoom tile
    """
    _authorise_tiles(uid, version)
    etag = tile_etag(uid, version, level, col, row)
    if request.headers.get("If-None-Match") == etag:
        return _tile_headers(Response(status=304), etag)
    try:
        try:
            data = reader_for(uid, version).tile(level, col, row)
        except TileNotReady:
            data = _render_on_demand(uid, version, level, col, row)
    except TileNotFound:
        raise NotFound("No such tile.") from None
    except ObjectNotFound:
        # The pyramid is gone (slide deleted, possibly by another process whose reader this
        # one still held): a 404, and the stale reader is dropped.
        forget_reader(uid)
        raise NotFound("No such tile.") from None
    _note_view(uid, level)
    resp = Response(data, mimetype="image/jpeg")
    resp.headers["Content-Length"] = str(len(data))
    return _tile_headers(resp, etag)


_channel_readers: dict[tuple[str, int, int], object] = {}


def _channel_reader(uid: str, version: int, channel: int):
    """The pyramid of one channel, ``{prefix}/c{k}`` (see processing.build_slide_pyramids)."""
    from ..tiling import PyramidReader
    from ..tiling.layout import pyramid_prefix

    key = (uid, version, channel)
    reader = _channel_readers.get(key)
    if reader is None:
        if len(_channel_readers) > 256:
            _channel_readers.clear()
        reader = PyramidReader(runtime.store(), f"{pyramid_prefix(uid, version)}/c{channel}", runtime.pack_cache())
        _channel_readers[key] = reader
    return reader


@bp.route("/api/v1/tiles/<uid>/v<int:version>/c<int:channel>/slide.dzi")
def channel_dzi(uid: str, version: int, channel: int):
    """Deep Zoom descriptor of one channel of a fluorescence slide (token or session).
    ---
    get:
      summary: DZI descriptor of a channel
    """
    _authorise_tiles(uid, version)
    try:
        xml = _channel_reader(uid, version, channel).dzi_xml()
    except (TileNotFound, ObjectNotFound):
        _channel_readers.pop((uid, version, channel), None)
        raise NotFound("The slide has no such channel.") from None
    resp = Response(xml, mimetype="application/xml")
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


@bp.route("/api/v1/tiles/<uid>/v<int:version>/c<int:channel>/slide_files/<int:level>/<int:col>_<int:row>.jpeg")
def channel_tile(uid: str, version: int, channel: int, level: int, col: int, row: int):
    """One 8-bit grey JPEG tile of a channel (its stored window); immutable per pyramid version.
    ---
    get:
      summary: Deep Zoom tile of a channel
    """
    _authorise_tiles(uid, version)
    etag = tile_etag(uid, version, level, col, row)[:-1] + f'-c{channel}"'
    if request.headers.get("If-None-Match") == etag:
        return _tile_headers(Response(status=304), etag)
    try:
        data = _channel_reader(uid, version, channel).tile(level, col, row)
    except TileNotReady:
        raise NotReadyYet(_("This part of the slide is still being prepared; it appears in a few seconds."),
                          code="tile_not_ready", retry_after=2) from None
    except (TileNotFound, ObjectNotFound):
        _channel_readers.pop((uid, version, channel), None)
        raise NotFound("No such tile.") from None
    _note_view(uid, level)
    resp = Response(data, mimetype="image/jpeg")
    resp.headers["Content-Length"] = str(len(data))
    return _tile_headers(resp, etag)


def _tile_headers(resp: Response, etag: str) -> Response:
    for name, value in tile_headers(etag):
        resp.headers[name] = value
    return resp


def _render_on_demand(uid: str, version: int, level: int, col: int, row: int) -> bytes:
    """A tile the pipeline has not stored yet: a worker renders it (see domain/tile_render.py).

    The web process never opens an original itself. It waits briefly for the worker;
    when none answers in time (all busy tiling, or the original is not on a worker's
    disk) the viewer gets 503 with Retry-After and asks again.
    """
    store = runtime.store()
    key = tile_render.ondemand_key(uid, version, level, col, row)
    try:
        return store.get_bytes(key)
    except ObjectNotFound:  # not rendered before; a storage outage still answers 503
        pass
    if tile_render.request_render(uid, version, level, col, row,
                                  wait_seconds=runtime.settings().ondemand_tile_wait_seconds):
        return store.get_bytes(key)
    raise NotReadyYet(_("This part of the slide is still being prepared; it appears in a few seconds."),
                      code="tile_not_ready", retry_after=2)


# ---------------------------------------------------------------- viewer page
@bp.route("/cases/<int:case_id>/viewer")
@authorize("case.view", load=_case, as_arg="case")
def viewer(case: Case):
    viewable = slide_service.viewable_slides(case)
    slides = []
    for s in viewable:
        j = slide_json(s)
        desc = slide_service.description_of(s)
        names = [n for n in desc.get("associated_images", [])
                 if n != "label" or policy.can(me(), "slide.view_label", s)]
        slides.append({
            "id": s.id, "name": " · ".join(p for p in (s.label, s.block_label, j["stain_display"]) if p),
            "stain": j["stain_display"], "blockLabel": s.block_label or "", "dziUrl": j["dzi_url"],
            "thumbnailUrl": j["thumbnail_url"],
            # a photo or a tiny image has no honest magnification (a 16-px "SVS" read 948x)
            "mpp": j["mpp"] if j["content"] not in ("photo", "tiny") else None,
            "objectivePower": j["objective_power"] if j["content"] not in ("photo", "tiny") else None,
            "width": j["width"], "height": j["height"], "status": s.status.value,
            "previewLevel": (j["preview"] or {}).get("max_level"),
            "previewFraction": (j["preview"] or {}).get("max_fraction"),
            # a preview's viewer asks here until the full pyramid is ready, then switches in place
            "apiUrl": url_for("slides.slide_detail", slide_id=s.id),
            "channels": [{"name": c["name"], "colour": c["colour"], "window": c["window"], "dziUrl": c["dzi_url"]}
                         for c in j.get("channels") or []],
            "metadata": {k: v for k, v in {
                # Name, stain, size, resolution and objective power are shown by the viewer itself.
                _("Content"): j["content_label"],
                _("Block / part"): s.block_label, _("Vendor"): j["vendor"], _("Format"): j["format"], _("Levels"): j["level_count"],
                _("Scan date"): j["scan_date"], _("File"): s.original_filename}.items() if v not in (None, "")},
            "associatedImages": [{"name": n, "url": url_for("slides.associated", slide_id=s.id, name=n)}
                                 for n in names],
        })
    if not slides:
        raise NotFound("This case has no slide ready for viewing yet.")

    def arg(name: str, cast):
        try:
            return cast(request.args[name]) if name in request.args else None
        except ValueError:
            return None
    ids = {s["id"] for s in slides}
    first = arg("slide", int)
    compare = arg("compare", int)
    config = {
        "prefixUrl": url_for("static", filename="dist/openseadragon/images/"),
        "caseId": case.id, "slides": slides,
        "initial": {"slideId": first if first in ids else slides[0]["id"],
                    "compareSlideId": compare if compare in ids else None,
                    "x": arg("x", float), "y": arg("y", float), "zoom": arg("z", float), "rotation": arg("r", float)},
        "i18n": viewer_strings(),
        "live": live_viewer_config(case),
    }
    audit_view(case)
    return render_template("viewer.html", case=case, config=config)


def audit_view(case: Case) -> None:
    slide_service.record_slides_viewed(me(), case, ip=client_ip())


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.wsgi_app = TileFastPath(app.wsgi_app, app,  # type: ignore[method-assign]
                                on_tile=view_audit_hook.on_tile)
    view_audit_hook.install(app)
