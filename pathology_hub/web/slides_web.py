"""Slides: status API, thumbnails and associated images, Deep Zoom tiles, the viewer page.

Tile requests are the hot path: with a valid tile token they are answered from
the object store without touching the database (see domain/tile_access.py).
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, Response, current_app, g, jsonify, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from storage.errors import ObjectNotFound

from .. import runtime
from ..db import SessionLocal
from ..domain import jobs, policy
from ..domain import slides as slide_service
from ..domain import tile_access
from ..domain.errors import NotFound
from ..models import Case, Slide, SlideStatus, Upload, UploadState
from ..tiling import TileNotFound, TileNotReady, render_tile
from .tile_fastpath import TileFastPath, forget_reader, reader_for, tile_etag, tile_headers
from . import view_audit_hook
from .authz import authorize, load_model
from .security import client_ip
from .bundle_strings import viewer_strings
from .serializers import iso

bp = Blueprint("slides", __name__)
UID_RE = re.compile(r"^[0-9a-f]{32}$")


def _me():
    return current_user._get_current_object()


def _session_token() -> str | None:
    return session.get("_user_id")


def tile_token(slide: Slide) -> str:
    return tile_access.make_token(current_app.config["SECRET_KEY"], slide.uid, slide.pyramid_version,
                                  _session_token() or "")


# ---------------------------------------------------------------- JSON: slides of a case
def slide_json(slide: Slide, *, with_urls: bool = True) -> dict:
    desc = slide_service.description_of(slide)
    job = slide_service.latest_job(SessionLocal(), slide)
    data = {
        "id": slide.id, "uid": slide.uid, "case_id": slide.case_id, "label": slide.label, "stain": slide.stain,
        "filename": slide.original_filename, "status": slide.status.value,
        "reject_code": slide.reject_code, "reject_message": slide.reject_message,
        "created_at": iso(slide.created_at), "pyramid_version": slide.pyramid_version,
        "sha256": slide.original.sha256 if slide.original else None,
        "size": slide.original.size if slide.original else None,
        "width": desc.get("width"), "height": desc.get("height"), "level_count": desc.get("level_count"),
        "mpp": desc.get("mpp_x"), "objective_power": desc.get("objective_power"), "vendor": desc.get("vendor"),
        "format": desc.get("format"), "scan_date": desc.get("scan_date"),
        "quality": slide_service.quality_of(slide) or None,
        "progress": jobs.progress_of(job) if job is not None else {},
        "job": {"kind": job.kind, "state": job.state.value, "attempts": job.attempts, "error": job.error}
        if job is not None else None,
    }
    if with_urls and slide.status in (SlideStatus.TILING, SlideStatus.READY):
        token = tile_token(slide)
        # who this session is and which slide the uid is, for the sampled view audit of tiles
        view_audit_hook.remember(_session_token(), getattr(current_user, "id", None), slide)
        base = url_for("slides.dzi", uid=slide.uid, version=slide.pyramid_version)
        data["dzi_url"] = f"{base}?t={token}"
        data["thumbnail_url"] = url_for("slides.thumbnail", slide_id=slide.id)
        data["viewer_url"] = url_for("slides.viewer", case_id=slide.case_id, slide=slide.id)
    return data


@bp.route("/api/v1/cases/<int:case_id>/slides")
@authorize("case.view", load=load_model(Case, "case_id"), as_arg="case")
def case_slides(case: Case):
    """Slides and uploads of a case with processing status.
    ---
    get:
      summary: List a case's slides (status, progress, quality warnings) and its failed uploads
    """
    db = SessionLocal()
    uploads = db.scalars(select(Upload).where(Upload.case_id == case.id, Upload.state.in_(
        [UploadState.FAILED, UploadState.RECEIVING])).order_by(Upload.created_at.desc()))
    return jsonify({"slides": [slide_json(s) for s in case.slides],
                    "uploads": [{"id": u.id, "filename": u.filename, "state": u.state.value, "size": u.size,
                                 "error_code": u.error_code, "error_message": u.error_message}
                                for u in uploads]})


@bp.route("/api/v1/slides/<int:slide_id>")
@authorize("slide.view", load=load_model(Slide, "slide_id"), as_arg="slide")
def slide_detail(slide: Slide):
    """One slide with metadata, quality report and tiling progress.
    ---
    get:
      summary: Get a slide
    """
    data = slide_json(slide)
    desc = slide_service.description_of(slide)
    names = [n for n in desc.get("associated_images", [])
             if n != "label" or policy.can(_me(), "slide.view_label", slide)]
    data["associated_images"] = [{"name": n, "url": url_for("slides.associated", slide_id=slide.id, name=n)}
                                 for n in names]
    data["properties"] = desc.get("properties", {})
    return jsonify(data)


@bp.route("/api/v1/slides/<int:slide_id>", methods=["DELETE"])
@authorize("slide.delete", load=load_model(Slide, "slide_id"), as_arg="slide")
def delete_slide(slide: Slide):
    """Delete a slide: the record is kept for audit, its pyramid is removed.
    ---
    delete:
      summary: Delete a slide
      responses:
        204: {description: deleted}
    """
    uid = slide.uid
    slide_service.delete_slide(SessionLocal(), runtime.store(), _me(), slide, ip=client_ip())
    forget_reader(uid)
    return Response(status=204)


@bp.route("/api/v1/slides/<int:slide_id>/thumbnail.jpg")
@authorize("slide.view", load=load_model(Slide, "slide_id"), as_arg="slide")
def thumbnail(slide: Slide):
    """The slide's thumbnail (JPEG).
    ---
    get:
      summary: Slide thumbnail
    """
    return _image(slide_service.thumbnail_key(slide), "image/jpeg")


@bp.route("/api/v1/slides/<int:slide_id>/associated/<name>.png")
@authorize("slide.view", load=load_model(Slide, "slide_id"), as_arg="slide")
def associated(slide: Slide, name: str):
    """An associated image (label, macro, thumbnail); the label only for those allowed to see it.
    ---
    get:
      summary: Associated image
    """
    if name not in slide_service.description_of(slide).get("associated_images", []):
        raise NotFound("No such associated image.")
    if name == "label" and not policy.can(_me(), "slide.view_label", slide):
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
    from ..domain.upload_server import server
    from ..uploads.staging import InvalidUploadId, UploadNotFound
    try:
        info = server().staging.load(upload_id)
    except (InvalidUploadId, UploadNotFound):
        raise NotFound("No such upload.") from None
    upload = SessionLocal().get(Upload, (info.owner or {}).get("upload_row", ""))
    if upload is None:
        raise NotFound("No such upload.")
    case = SessionLocal().get(Case, upload.case_id)
    policy.ensure(_me(), "case.view", case)
    slide = SessionLocal().get(Slide, upload.slide_id) if upload.slide_id else None
    if upload.state is UploadState.FAILED:
        return jsonify({"status": "failed", "error": {"code": upload.error_code, "message": upload.error_message}})
    if slide is None:
        return jsonify({"status": "uploading" if upload.state is UploadState.RECEIVING else upload.state.value})
    status = {SlideStatus.READY: "ready", SlideStatus.REJECTED: "rejected", SlideStatus.FAILED: "failed"}.get(
        slide.status, "processing")
    body = {"status": status, "slide_id": slide.id, "slide_status": slide.status.value}
    if slide.reject_message:
        body["error"] = {"code": slide.reject_code, "message": slide.reject_message}
    return jsonify(body)


# ---------------------------------------------------------------- Deep Zoom
def _authorise_tiles(uid: str, version: int) -> None:
    """Token fast path; otherwise the full policy check through the database."""
    if not UID_RE.match(uid):
        raise NotFound("Not found.")
    if tile_access.check_token(current_app.config["SECRET_KEY"], request.args.get("t"), uid, version,
                               _session_token()):
        return
    if not current_user.is_authenticated:
        raise NotFound("Not found.")
    slide = SessionLocal().scalar(select(Slide).where(Slide.uid == uid))
    if slide is None or slide.pyramid_version != version:
        raise NotFound("Not found.")
    policy.ensure(_me(), "slide.view", slide)
    g.tile_viewer = (_me().id, slide)
    view_audit_hook.remember(_session_token(), _me().id, slide)


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


def _tile_headers(resp: Response, etag: str) -> Response:
    for name, value in tile_headers(etag):
        resp.headers[name] = value
    return resp


def _render_on_demand(uid: str, version: int, level: int, col: int, row: int) -> bytes:
    """A tile the pipeline has not stored yet: render it from the original once and keep it."""
    store = runtime.store()
    key = f"pyramids/{uid}/v{version}/ondemand/{level}/{col}_{row}.jpeg"
    try:
        return store.get_bytes(key)
    except ObjectNotFound:  # not rendered before; a storage outage still answers 503
        pass
    slide = SessionLocal().scalar(select(Slide).where(Slide.uid == uid))
    if slide is None or slide.deleted_at is not None or slide.pyramid_version != version:
        raise NotFound("Not found.")
    data = render_tile(str(slide_service.openable_path(store, slide)), level, col, row)
    store.put_bytes(key, data, content_type="image/jpeg")
    return data


# ---------------------------------------------------------------- viewer page
@bp.route("/cases/<int:case_id>/viewer")
@authorize("case.view", load=load_model(Case, "case_id"), as_arg="case")
def viewer(case: Case):
    viewable = [s for s in case.slides if s.status in (SlideStatus.TILING, SlideStatus.READY)]
    slides = []
    for s in viewable:
        j = slide_json(s)
        desc = slide_service.description_of(s)
        names = [n for n in desc.get("associated_images", [])
                 if n != "label" or policy.can(_me(), "slide.view_label", s)]
        slides.append({
            "id": s.id, "name": f"{s.label} · {s.stain}", "stain": s.stain, "dziUrl": j["dzi_url"],
            "thumbnailUrl": j["thumbnail_url"], "mpp": j["mpp"], "objectivePower": j["objective_power"],
            "width": j["width"], "height": j["height"], "status": s.status.value,
            "metadata": {k: v for k, v in {
                # Name, stain, size, resolution and objective power are shown by the viewer itself.
                _("Vendor"): j["vendor"], _("Format"): j["format"], _("Levels"): j["level_count"],
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
    }
    audit_view(case)
    return render_template("viewer.html", case=case, config=config)


def audit_view(case: Case) -> None:
    from ..domain import audit
    db = SessionLocal()
    audit.record(db, "case.view_slides", actor=_me(), object_type="case", object_id=case.id, case_id=case.id,
                 ip=client_ip())
    db.commit()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.wsgi_app = TileFastPath(app.wsgi_app, app,  # type: ignore[method-assign]
                                on_tile=view_audit_hook.on_tile)
    view_audit_hook.install(app)
