"""DICOMweb read side (QIDO-RS search, WADO-RS metadata and frames) for the slides a user may see.

Thin handlers: who may see what is :mod:`..domain.dicom.catalogue` (the tile policy, ``slide.view``,
and ``slide.view_label`` for label/macro), the datasets are :mod:`..domain.dicom.wsi_dataset`, frames
come straight from the stored pyramid (:mod:`..domain.dicom.frames`). Clients authenticate like the
rest of the API: the login session cookie or ``Authorization: Bearer <API token>``. Frames served
feed the same sampled ``slide.viewed`` audit as Deep Zoom tiles.
"""

from __future__ import annotations

import json
import tempfile

from flask import Blueprint, Flask, Response, request, send_file
from flask_babel import gettext as _

from storage.errors import ObjectNotFound

from .. import runtime
from ..domain import slides as slide_service
from ..domain.dicom import catalogue, export, frames, multipart, qido
from ..domain.dicom.catalogue import DicomInstance, DicomSeries, DicomStudy
from ..domain.dicom.wsi_dataset import TRANSFER_SYNTAX
from ..domain.errors import Conflict, DomainError, NotFound, NotReadyYet
from ..tiling import TileNotFound, TileNotReady
from ..tiling.geometry import Geometry
from . import view_audit_hook
from .authz import authorize, load_model, me
from .cors import allow_cors
from .security import client_ip
from .tile_fastpath import forget_reader, reader_for

bp = Blueprint("dicomweb", __name__, url_prefix="/dicomweb")
allow_cors(bp)  # external viewers (CORS_ALLOWED_ORIGINS only)
DICOM_JSON = "application/dicom+json"
MAX_FRAMES_PER_REQUEST = 256


class NotAcceptable(DomainError):
    status = 406
    code = "not_acceptable"


def _geometry(uid: str, version: int) -> Geometry:
    try:
        return reader_for(uid, version).geometry
    except (TileNotFound, ObjectNotFound):
        forget_reader(uid)
        raise LookupError(uid) from None


def _json(items: list[dict]) -> Response:
    # An empty search answers 204 in PS3.18; dicomweb-client handles both, most servers send [] with 200.
    resp = Response(json.dumps(items), mimetype=DICOM_JSON)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp


def _put(item: dict, keyword: str, vr: str, value) -> None:
    from pydicom.datadict import tag_for_keyword
    tag = f"{tag_for_keyword(keyword):08X}"
    if value is None or value == "" or value == []:
        item[tag] = {"vr": vr}
    else:
        item[tag] = {"vr": vr, "Value": value if isinstance(value, list) else [value]}


def _study_json(study: DicomStudy) -> dict:
    item = {k: v for k, v in study.info.to_json_dict().items()}
    _put(item, "ModalitiesInStudy", "CS", sorted({s.modality for s in study.series}))
    _put(item, "NumberOfStudyRelatedSeries", "IS", len(study.series))
    _put(item, "NumberOfStudyRelatedInstances", "IS", sum(len(s.instances) for s in study.series))
    return item


def _series_json(study: DicomStudy, series: DicomSeries) -> dict:
    item = _study_json(study)
    _put(item, "Modality", "CS", series.modality)
    _put(item, "SeriesInstanceUID", "UI", series.series_uid)
    _put(item, "SeriesNumber", "IS", series.series_number)
    _put(item, "SeriesDescription", "LO", series.description)
    _put(item, "NumberOfSeriesRelatedInstances", "IS", len(series.instances))
    return item


def _instance_json(study: DicomStudy, series: DicomSeries, inst: DicomInstance) -> dict:
    item = _series_json(study, series)
    _put(item, "SOPClassUID", "UI", inst.sop_class_uid)
    _put(item, "SOPInstanceUID", "UI", inst.sop_instance_uid)
    _put(item, "InstanceNumber", "IS", inst.instance_number)
    _put(item, "NumberOfFrames", "IS", inst.number_of_frames)
    if inst.rows:
        _put(item, "Rows", "US", inst.rows)
        _put(item, "Columns", "US", inst.columns)
    if inst.slide is not None and inst.level is not None:
        w, h = inst.slide.geometry.level_dimensions[inst.level]
        _put(item, "TotalPixelMatrixColumns", "UL", w)
        _put(item, "TotalPixelMatrixRows", "UL", h)
        ds = inst.dataset()
        _put(item, "ImageType", "CS", list(ds.ImageType))
        _put(item, "AvailableTransferSyntaxUID", "UI", str(TRANSFER_SYNTAX))
    elif inst.image_type:
        _put(item, "ImageType", "CS", list(inst.image_type))
        _put(item, "AvailableTransferSyntaxUID", "UI", str(TRANSFER_SYNTAX))
    return item


def _supported(items: list[dict]) -> set[str]:
    tags: set[str] = set()
    for item in items:
        tags.update(item)
    return tags


def _search(items: list[dict], always: set[str]) -> Response:
    filters, offset, limit = qido.parse(request.args, _supported(items) | always)
    return _json(list(qido.search(items, filters, offset, limit)))


# Attributes a client may filter on even when no result carries them (answers then match nothing).
_STUDY_KEYS = {f"{t:08X}" for t in (0x00100010, 0x00100020, 0x0020000D, 0x00080020, 0x00080030, 0x00080050,
                                    0x00080061, 0x00200010, 0x00080090)}
_SERIES_KEYS = _STUDY_KEYS | {f"{t:08X}" for t in (0x00080060, 0x0020000E, 0x00200011)}
_INSTANCE_KEYS = _SERIES_KEYS | {f"{t:08X}" for t in (0x00080016, 0x00080018, 0x00200013)}


def _studies() -> list[DicomStudy]:
    return catalogue.visible_studies(me(), _geometry)


def _study(study_uid: str) -> DicomStudy:
    study = catalogue.find_study(me(), study_uid, _geometry)
    if study is None:
        raise NotFound(_("No such study, or it is not visible to you."), code="study_not_found")
    return study


def _series(study_uid: str, series_uid: str) -> tuple[DicomStudy, DicomSeries]:
    study = _study(study_uid)
    for series in study.series:
        if series.series_uid == series_uid:
            return study, series
    raise NotFound(_("No such series, or it is not visible to you."), code="series_not_found")


def _instance(study_uid: str, series_uid: str, instance_uid: str) -> tuple[DicomStudy, DicomSeries, DicomInstance]:
    study, series = _series(study_uid, series_uid)
    for inst in series.instances:
        if inst.sop_instance_uid == instance_uid:
            return study, series, inst
    raise NotFound(_("No such instance, or it is not visible to you."), code="instance_not_found")


# ---------------------------------------------------------------- QIDO-RS
@bp.route("/studies")
def search_studies():
    """QIDO-RS study search (ModalitiesInStudy=SM, StudyInstanceUID, PatientID, AccessionNumber, ...).
    ---
    get:
      summary: "DICOMweb QIDO-RS: search studies (cases with slides you may view)"
      tags: [DICOMweb]
      responses:
        200: {description: "DICOM JSON array (application/dicom+json)"}
        400: {description: "`unsupported_query_attribute` or `invalid_query`"}
    """
    return _search([_study_json(s) for s in _studies()], _STUDY_KEYS)


@bp.route("/series")
def search_all_series():
    """QIDO-RS series search over all visible studies.
    ---
    get:
      summary: "DICOMweb QIDO-RS: search series (one per slide and pyramid version)"
      tags: [DICOMweb]
    """
    items = [_series_json(st, se) for st in _studies() for se in st.series]
    return _search(items, _SERIES_KEYS)


@bp.route("/studies/<study_uid>/series")
def search_series(study_uid: str):
    """QIDO-RS series search in a study.
    ---
    get:
      summary: "DICOMweb QIDO-RS: search a study's series"
      tags: [DICOMweb]
    """
    study = _study(study_uid)
    return _search([_series_json(study, se) for se in study.series], _SERIES_KEYS)


@bp.route("/studies/<study_uid>/instances")
def search_study_instances(study_uid: str):
    """QIDO-RS instance search in a study.
    ---
    get:
      summary: "DICOMweb QIDO-RS: search a study's instances (one per pyramid level)"
      tags: [DICOMweb]
    """
    study = _study(study_uid)
    items = [_instance_json(study, se, i) for se in study.series for i in se.instances]
    return _search(items, _INSTANCE_KEYS)


@bp.route("/studies/<study_uid>/series/<series_uid>/instances")
def search_series_instances(study_uid: str, series_uid: str):
    """QIDO-RS instance search in a series.
    ---
    get:
      summary: "DICOMweb QIDO-RS: search a series' instances"
      tags: [DICOMweb]
    """
    study, series = _series(study_uid, series_uid)
    return _search([_instance_json(study, series, i) for i in series.instances], _INSTANCE_KEYS)


# ---------------------------------------------------------------- WADO-RS metadata
def _metadata(inst: DicomInstance) -> dict:
    if inst.part10 is not None:
        from io import BytesIO

        from pydicom import dcmread
        ds = dcmread(BytesIO(inst.part10()))
        return ds.to_json_dict(bulk_data_threshold=1 << 20)
    return inst.dataset().to_json_dict(bulk_data_threshold=1 << 20)


@bp.route("/studies/<study_uid>/metadata")
def study_metadata(study_uid: str):
    """WADO-RS study metadata.
    ---
    get:
      summary: "DICOMweb WADO-RS: metadata of every instance of a study"
      tags: [DICOMweb]
    """
    study = _study(study_uid)
    return _json([_metadata(i) for se in study.series for i in se.instances])


@bp.route("/studies/<study_uid>/series/<series_uid>/metadata")
def series_metadata(study_uid: str, series_uid: str):
    """WADO-RS series metadata.
    ---
    get:
      summary: "DICOMweb WADO-RS: metadata of a series' instances"
      tags: [DICOMweb]
    """
    _study_, series = _series(study_uid, series_uid)
    return _json([_metadata(i) for i in series.instances])


@bp.route("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/metadata")
def instance_metadata(study_uid: str, series_uid: str, instance_uid: str):
    """WADO-RS instance metadata.
    ---
    get:
      summary: "DICOMweb WADO-RS: metadata of one instance (VL Whole Slide Microscopy Image, TILED_FULL)"
      tags: [DICOMweb]
    """
    _study_, _series_, inst = _instance(study_uid, series_uid, instance_uid)
    return _json([_metadata(inst)])


@bp.route("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>")
def retrieve_instance(study_uid: str, series_uid: str, instance_uid: str):
    """WADO-RS instance retrieval, for instances kept whole (the slide's DICOM annotations).
    ---
    get:
      summary: 'DICOMweb WADO-RS: one instance as multipart/related; type="application/dicom"'
      description: >-
        Offered for Bulk Simple Annotations instances (modality ANN). Pyramid levels are served as
        frames (`.../frames/{n}`) and as the DICOM WSI export; asking for a whole level here is 406.
      tags: [DICOMweb]
      responses:
        200: {description: 'multipart/related; type="application/dicom"; one Part 10 file'}
        404: {description: "`instance_not_found`"}
        406: {description: "`not_acceptable`"}
    """
    _study_, _series_, inst = _instance(study_uid, series_uid, instance_uid)
    accept = (request.headers.get("Accept") or "").lower()
    if accept and "application/dicom" not in accept and "*/*" not in accept:
        raise NotAcceptable(_("Instances are offered as application/dicom only."))
    if inst.part10 is None:
        raise NotAcceptable(_("A pyramid level is retrieved as frames or as the DICOM WSI export, "
                              "not as one instance."))
    body, content_type = multipart.encode([inst.part10()], "application/dicom")
    return Response(body, content_type=content_type, headers={"Cache-Control": "private, no-cache"})


# ---------------------------------------------------------------- WADO-RS frames
def _frame_numbers(raw: str) -> list[int]:
    try:
        numbers = [int(p) for p in raw.split(",") if p.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n < 1 for n in numbers) or len(numbers) > MAX_FRAMES_PER_REQUEST:
        raise NotFound(_("Frame numbers must be a comma-separated list of numbers from 1."), code="invalid_frame")
    return numbers


@bp.route("/studies/<study_uid>/series/<series_uid>/instances/<instance_uid>/frames/<frame_list>")
def retrieve_frames(study_uid: str, series_uid: str, instance_uid: str, frame_list: str):
    """WADO-RS frames as multipart/related; type="image/jpeg", read from the stored pyramid.
    ---
    get:
      summary: "DICOMweb WADO-RS: frames (JPEG baseline) of a pyramid level"
      description: >-
        `frame_list`: 1-based frame numbers, comma separated (row-major tiles of the level, at most 256).
        Accept `multipart/related; type="image/jpeg"` (or none). Frames equal stored tiles where the
        pyramid has 256-px tiles without overlap; see docs/interoperability.md for what is re-encoded.
      tags: [DICOMweb]
      responses:
        200: {description: "multipart/related; type=\\"image/jpeg\\"; one part per frame"}
        404: {description: "`instance_not_found`, `frame_not_found` or `invalid_frame`"}
        406: {description: "`not_acceptable`: only image/jpeg frames are offered"}
    """
    numbers = _frame_numbers(frame_list)
    _study_, _series_, inst = _instance(study_uid, series_uid, instance_uid)
    part_type = multipart.frame_part_type(request.headers.get("Accept"))
    if part_type is None:
        raise NotAcceptable(_("Frames are offered as image/jpeg (JPEG baseline) only."))
    if inst.single_frame is not None:  # label or macro, already cleared by slide.view_label
        if numbers != [1]:
            raise NotFound(_("No such frame."), code="frame_not_found")
        body, content_type = multipart.encode([inst.single_frame()], part_type,
                                              transfer_syntax=str(TRANSFER_SYNTAX))
        return Response(body, content_type=content_type, headers={"Cache-Control": "private, no-cache"})
    if inst.slide is None or inst.level is None:
        raise NotFound(_("This instance has no frames."), code="frame_not_found")
    info, level = inst.slide, inst.level
    try:
        reader = reader_for(info.slide_uid, info.pyramid_version)
        parts = [frames.read_frame(reader, level, n) for n in numbers]
    except IndexError:
        raise NotFound(_("No such frame."), code="frame_not_found") from None
    except TileNotReady:
        raise NotReadyYet(_("This part of the slide is still being prepared; it appears in a few seconds."),
                          code="tile_not_ready", retry_after=2) from None
    except (TileNotFound, ObjectNotFound):
        forget_reader(info.slide_uid)
        raise NotFound(_("No such frame."), code="frame_not_found") from None
    slide = catalogue.slide_of(info)
    if slide is not None:
        for _n in numbers:
            view_audit_hook.on_tile_known(me().id, slide, level)
    body, content_type = multipart.encode(parts, part_type, transfer_syntax=str(TRANSFER_SYNTAX))
    resp = Response(body, content_type=content_type)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# ---------------------------------------------------------------- DICOM WSI export (zip)
export_bp = Blueprint("dicom_export", __name__)
_slide = load_model(slide_service.find_slide, "slide_id")


@export_bp.route("/api/v1/slides/<int:slide_id>/export/dicom.zip")
@authorize("slide.view", load=_slide, as_arg="slide")
def export_dicom(slide):
    """Download a slide as a DICOM WSI series (zip of Part 10 files, one per pyramid level).
    ---
    get:
      summary: "Download a slide as DICOM WSI (zip): one VL Whole Slide Microscopy Image per level"
      description: >-
        Written from the stored tiles (see docs/interoperability.md for what is re-encoded). The
        patient module carries the case's pseudonymised identifier only; label and macro images are
        included only for users who may see the slide label. Audited as `slide.export_dicom`.
      responses:
        200: {description: "application/zip"}
        409: {description: "`slide_not_ready`: the slide's pyramid is not complete yet"}
    """
    if slide.status.value != "ready":
        raise Conflict(_("The slide can be downloaded once its processing has finished."), code="slide_not_ready")
    try:
        reader = reader_for(slide.uid, slide.pyramid_version)
    except (TileNotFound, ObjectNotFound):
        forget_reader(slide.uid)
        raise NotFound(_("The slide has no pyramid yet.")) from None
    info = catalogue.slide_info(slide, reader.geometry, associated=catalogue.allowed_associated(me(), slide))
    store = runtime.store()

    def associated_png(name: str) -> bytes | None:
        try:
            return store.get_bytes(slide_service.associated_key(slide, name))
        except ObjectNotFound:
            return None
    spool = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)
    names = export.write_zip(spool, info, reader, associated_png)
    catalogue.record_export(me(), slide, files=len(names), ip=client_ip())
    spool.seek(0)
    safe_label = "".join(c if c.isalnum() or c in "-_" else "_" for c in (slide.label or "slide"))
    return send_file(spool, mimetype="application/zip", as_attachment=True,
                     download_name=f"slide-{slide.id}-{safe_label}-dicom.zip", max_age=0)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_blueprint(export_bp)
