"""Annotations API: thin handlers over :mod:`pathology_hub.domain.annotations`.

Every route first checks ``slide.view`` (a hidden slide answers 404); the domain
service then applies the annotation rules (report signed, own annotations only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge

from ..domain import annotations as service
from ..domain import slides as slide_service
from ..domain import unit_of_work
from ..domain.annotations import actions
from ..domain.annotations import cache as annotation_cache
from ..domain.errors import ValidationFailed
from .authz import authorize, load_model, me
from .security import client_ip
from .errors import message_of

if TYPE_CHECKING:
    from ..models import Annotation, Slide

bp = Blueprint("annotations", __name__)

_slide = load_model(slide_service.find_slide, "slide_id")
BASE = "/api/v1/slides/<int:slide_id>/annotations"



def _raw_body(limit: int, code: str) -> bytes:
    """The request body, refused (422, nothing read past the limit) when larger than ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        raise ValidationFailed("The request body is larger than %(mb)s MB.", code=code, params={"mb": limit // 2**20})
    request.max_content_length = limit
    try:
        return request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise ValidationFailed("The request body is larger than %(mb)s MB.", code=code, params={"mb": limit // 2**20}) from None


def _json_object() -> dict[str, Any]:
    data = service.parse_json_document(_raw_body(service.MAX_BODY_BYTES, "body_too_large"),
                                       limit=service.MAX_BODY_BYTES)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return data


def _geojson(text: str, status: int = 200, **headers: str) -> Response:
    resp = Response(text, status=status, mimetype="application/geo+json")
    resp.headers.update(headers)
    return resp


def _feature_response(annotation: Annotation, slide: Slide, status: int = 200) -> Response:
    text = service.feature_json_text(annotation, service.SlideFrame.of(slide))
    resp = Response(text, status=status, mimetype="application/json")
    resp.headers["ETag"] = f'"{annotation.version}"'
    return resp


@bp.errorhandler(service.VersionConflict)
def version_conflict(exc: service.VersionConflict):
    unit_of_work.discard()
    current = service.feature_dict(exc.current, service.SlideFrame.of(exc.current.slide))
    return jsonify({"error": {"code": exc.code, "message": message_of(exc)}, "current": current}), 409


@bp.route("/api/v1/annotation-classes")
def annotation_classes():
    """The annotation class palette (name and colour) of the institution network.
    ---
    get:
      summary: List annotation classes
      responses:
        200: {description: '{"classes": [{"name", "color"}]}'}
    """
    return jsonify({"classes": [{**c, "label": str(CLASS_LABELS.get(c["name"], c["name"]))}
                                for c in service.annotation_classes()]})


#: Names of the default palette as readers see them; a network's own palette shows its names as configured.
CLASS_LABELS = {"tumour": _l("tumour"), "stroma": _l("stroma"), "necrosis": _l("necrosis"),
                "inflammation": _l("inflammation"), "mitosis": _l("mitosis"), "other": _l("other")}


@bp.route(BASE, methods=["GET"])
@authorize("slide.view", load=_slide, as_arg="slide")
def list_annotations(slide: Slide):
    """Annotations of a slide as a GeoJSON FeatureCollection (slide pixels, origin top-left).
    ---
    get:
      summary: List a slide's annotations, optionally only those touching a viewport
      parameters:
        - {name: bbox, in: query, schema: {type: string}, description: 'x0,y0,x1,y1 in full-resolution pixels'}
        - {name: class, in: query, schema: {type: string}}
        - {name: author, in: query, schema: {type: integer}}
      responses:
        200: {description: FeatureCollection; properties carry class, color, comment, author, version and µm measurements}
        403: {description: technician or clinician before the report is signed (code report_not_signed)}
    """
    text = actions.list_text(me(), slide, bbox=request.args.get("bbox"),
                             class_name=request.args.get("class"), author=request.args.get("author"))
    return _geojson(text)


@bp.route(BASE, methods=["POST"])
@authorize("slide.view", load=_slide, as_arg="slide")
def create_annotation(slide: Slide):
    """Create an annotation (pathologists who can see the case).
    ---
    post:
      summary: Create an annotation
      requestBody:
        content:
          application/json:
            schema: {type: object, required: [geometry], properties: {geometry: {type: object}, properties: {type: object, properties: {class: {type: string}, comment: {type: string}, name: {type: string}, shape: {type: string, enum: [ellipse, rectangle]}}}}}
      responses:
        201: {description: the created feature (ETag is its version)}
        422: {description: invalid geometry, unknown class, body too large}
    """
    annotation = actions.create(me(), slide, _json_object(), ip=client_ip())
    return _feature_response(annotation, slide, 201)


@bp.route(BASE + "/<int:annotation_id>", methods=["PUT", "PATCH"])
@authorize("slide.view", load=_slide)
def update_annotation(slide_id: int, annotation_id: int):
    """Change your own annotation; the version you edited is required.
    ---
    put:
      summary: Replace an annotation (geometry required; omitted properties are cleared)
      parameters:
        - {name: If-Match, in: header, schema: {type: string}, description: 'the version edited, e.g. "3" (or "version" in the body)'}
      responses:
        200: {description: the updated feature}
        409: {description: 'stale version: {"error": {"code": "version_conflict"}, "current": feature}'}
        428: {description: no version given}
    patch:
      summary: Change some fields of an annotation
      parameters:
        - {name: If-Match, in: header, schema: {type: string}}
      responses:
        200: {description: the updated feature}
        409: {description: stale version, with the current annotation}
    """
    slide = _slide(slide_id=slide_id)
    data = _json_object()
    version = service.resolve_version(request.headers.get("If-Match"), data)
    annotation = actions.update(me(), slide, annotation_id, data, version, partial=request.method == "PATCH",
                                ip=client_ip())
    return _feature_response(annotation, slide)


@bp.route(BASE + "/<int:annotation_id>", methods=["DELETE"])
@authorize("slide.view", load=_slide)
def delete_annotation(slide_id: int, annotation_id: int):
    """Delete your own annotation (kept for the record); If-Match makes it conditional.
    ---
    delete:
      summary: Delete an annotation
      responses:
        204: {description: deleted}
        409: {description: stale If-Match version}
    """
    slide = _slide(slide_id=slide_id)
    version = service.resolve_version(request.headers.get("If-Match"), None)
    actions.delete(me(), slide, annotation_id, version, ip=client_ip())
    return Response(status=204)


@bp.route(BASE + "/export.geojson", methods=["GET"])
@authorize("slide.view", load=_slide, as_arg="slide")
def export_geojson(slide: Slide):
    """The slide's annotations and detections as a QuPath GeoJSON file.
    ---
    get:
      summary: Export annotations for QuPath
      responses:
        200: {description: 'FeatureCollection; ids are UUIDs, properties objectType, classification {name, color}, name, isLocked, measurements, metadata.comment'}
    """
    text = actions.export_text(me(), slide)
    return _geojson(text, **{"Content-Disposition": f'attachment; filename="slide-{slide.id}-annotations.geojson"'})


@bp.route(BASE + "/import", methods=["POST"])
@authorize("slide.view", load=_slide, as_arg="slide")
def import_geojson(slide: Slide):
    """Import a QuPath GeoJSON file: all features or none.
    ---
    post:
      summary: Import annotations from QuPath GeoJSON
      description: >
        Idempotent: a feature whose id is the id of a live annotation of this slide, or whose geometry
        and class equal one, updates that annotation (or leaves it unchanged) instead of adding a copy.
        Ids of other slides are never matched. `?as_copies=1` imports every feature as a new annotation.
      parameters:
        - {in: query, name: as_copies, schema: {type: boolean}, description: 'import every feature as a new annotation'}
      requestBody:
        content:
          application/json:
            schema: {description: 'a FeatureCollection, a single Feature, or a list of features (at most 50 MB, 200000 features)'}
      responses:
        201: {description: '{"imported" (= created), "created", "updated", "unchanged", "detections", "renamed": [{"index", "from", "to"}]}'}
        422: {description: 'invalid file; error.details.features lists {index, id, reason} and nothing is imported'}
    """
    flag = request.args.get("as_copies", "").strip().lower()
    if flag not in ("", "0", "1", "true", "false"):
        raise ValidationFailed("as_copies must be 1 or 0.", code="invalid_field")
    raw = _raw_body(service.MAX_IMPORT_BYTES, "import_too_large")
    result = actions.import_geojson(me(), slide, raw, as_copies=flag in ("1", "true"), ip=client_ip())
    return jsonify({"imported": result.imported, "created": result.created, "updated": result.updated,
                    "unchanged": result.unchanged, "detections": result.detections,
                    "renamed": result.renamed}), 201


@bp.route(BASE + "/export.dcm", methods=["GET"])
@authorize("slide.view", load=_slide, as_arg="slide")
def export_dicom(slide: Slide):
    """The slide's annotations as DICOM Microscopy Bulk Simple Annotations (Supplement 222).
    ---
    get:
      summary: Export annotations as a DICOM annotation instance
      description: >
        One Part 10 file (SOP class 1.2.840.10008.5.1.4.1.1.91.1, modality ANN) whose 2D coordinates are
        pixels of the slide's full-resolution level. Groups are (graphic type, class, author); measurements
        are in the standard MeasurementsSequence; ids, comments, lock, colour and exact values are kept in a
        private block so an import into this platform loses nothing. The same annotation state gives the
        same file and SOP Instance UID (also listed under DICOMweb).
      responses:
        200: {description: 'application/dicom'}
        403: {description: technician or clinician before the report is signed (code report_not_signed)}
    """
    data = actions.export_dicom(me(), slide, secret=current_app.config["SECRET_KEY"])
    resp = Response(data, mimetype="application/dicom")
    resp.headers["Content-Disposition"] = f'attachment; filename="slide-{slide.id}-annotations.dcm"'
    return resp


def _flag(name: str) -> bool:
    flag = request.args.get(name, "").strip().lower()
    if flag not in ("", "0", "1", "true", "false"):
        raise ValidationFailed("%(name)s must be 1 or 0.", code="invalid_field", params={"name": name})
    return flag in ("1", "true")


@bp.route(BASE + "/import.dcm", methods=["POST"])
@authorize("slide.view", load=_slide, as_arg="slide")
def import_dicom(slide: Slide):
    """Import a DICOM Microscopy Bulk Simple Annotations file: all annotations or none.
    ---
    post:
      summary: Import annotations from a DICOM annotation instance
      description: >
        The body is the .dcm file. Matching and idempotency are those of the GeoJSON import. A file of another
        slide is refused (code dicom_other_slide) unless `?other_slide=1` confirms it; coordinates must lie
        inside this slide. A file this platform wrote (its private block verifies) keeps each annotation's
        author; otherwise the importer becomes the author and the file's author is kept as the dicomAuthor
        property.
      parameters:
        - {in: query, name: other_slide, schema: {type: boolean}, description: 'confirm importing annotations drawn on another slide'}
        - {in: query, name: as_copies, schema: {type: boolean}, description: 'import every annotation as a new one'}
      requestBody:
        content:
          application/dicom:
            schema: {type: string, format: binary, description: 'at most 50 MB'}
      responses:
        201: {description: '{"imported", "created", "updated", "unchanged", "detections", "renamed", "other_slide", "authors_kept", "authors_claimed"}'}
        422: {description: 'codes dicom_invalid (not DICOM), dicom_wrong_sop_class, dicom_invalid_annotations, dicom_3d_coordinates, dicom_other_slide, import_too_large, invalid_features'}
    """
    other_slide, as_copies = _flag("other_slide"), _flag("as_copies")
    raw = _raw_body(service.MAX_IMPORT_BYTES, "import_too_large")
    out = actions.import_dicom(me(), slide, raw, secret=current_app.config["SECRET_KEY"], other_slide=other_slide,
                               as_copies=as_copies, ip=client_ip())
    result = out.result
    return jsonify({"imported": result.imported, "created": result.created, "updated": result.updated,
                    "unchanged": result.unchanged, "detections": result.detections, "renamed": result.renamed,
                    "other_slide": out.other_slide, "authors_kept": out.authors_kept,
                    "authors_claimed": out.authors_claimed}), 201


def init_app(app: Flask) -> None:
    annotation_cache.clear()  # a new app may point at another database whose ids repeat
    app.register_blueprint(bp)

