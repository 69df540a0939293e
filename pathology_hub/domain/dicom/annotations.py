"""A slide's annotations as a DICOM Microscopy Bulk Simple Annotations instance (Supplement 222),
and back: the pure mapping, built on ``highdicom`` (no database, no Flask).

Why this shape:

* **Groups.** Supplement 222 stores annotations in groups that share one graphic type and one
  annotated property (class). The platform's annotations also carry an author, so a group is one
  (graphic type, class, author) triple; its label is the class name and its description names the
  author, so a PACS viewer shows who drew what.
* **Geometry.** Coordinates are 2D image coordinates (``AnnotationCoordinateType`` ``2D``), i.e.
  level-0 pixels of the referenced full-resolution level, the platform's own coordinate space.
  They are written as 64-bit floats (``DoublePointCoordinatesData``), so no coordinate changes.
  Point → POINT, LineString → POLYLINE, Polygon → POLYGON (closing vertex dropped, as DICOM
  wants). A GeoJSON MultiPoint, MultiPolygon or a polygon with holes has no single DICOM
  primitive: it becomes several consecutive primitives of one group, and the private block
  (below) says which primitives form one annotation, so the import rebuilds it exactly.
* **Measurements** are written per group in the standard ``MeasurementsSequence`` (names as
  private ``99PHUB`` codes whose meaning is the measurement name, unit UCUM ``1``). The standard
  stores 32-bit floats, so the exact values are kept in the private block as well; on import an
  exact value is used only when it still matches the standard float32 value (a file edited by
  another tool wins with its own numbers).
* **Private block** (group ``0x0077``, creator ``PATHOLOGY_HUB_ANN 1``, element ``0x10`` UT):
  JSON with each annotation's id, object type, lock, colour, name, comment, editor shape, exact
  measurements, extra QuPath properties and author. Other software ignores it; our import reads it
  when its counts agree with the standard data. It ends with an HMAC (``0x11``) over the JSON and
  every group's coordinates and measurements, keyed by the platform's secret: only a file this
  platform wrote and nobody changed may name another user as author on import; otherwise the
  importer becomes the author and the claimed one is kept as the ``dicomAuthor`` property.
* **Source image.** highdicom copies patient, study and specimen attributes from the image the
  annotations refer to. The platform has no stored DICOM image, so :func:`source_image` builds a
  minimal pydicom ``Dataset`` with the UIDs of :mod:`.uids` (study, the slide's series, the
  full-resolution level instance that DICOMweb serves, frame of reference) and the case's
  pseudonymised patient identifier; nothing else of the patient is ever written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

# highdicom logs every attribute module it copies at INFO: one export would write a dozen lines.
logging.getLogger("highdicom.base").setLevel(logging.WARNING)

ANN_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.91.1"    # Microscopy Bulk Simple Annotations Storage
WSI_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.77.1.6"  # VL Whole Slide Microscopy Image Storage
PRIVATE_GROUP = 0x0077
PRIVATE_CREATOR = "PATHOLOGY_HUB_ANN 1"
PRIVATE_METADATA = 0x10
PRIVATE_MAC = 0x11
CODING_SCHEME = "99PHUB"                                # private coding scheme (DICOM PS3.16 8.2: "99" prefix)
UNCLASSIFIED = "unclassified"
ELLIPSE_VERTICES = 64
MANUFACTURER = "Pathology Hub"


class DicomAnnotationError(ValueError):
    """A file that cannot be read as this slide's annotations; ``code`` is the stable error code,
    ``message`` an English message id with ``params`` (translated by the web layer)."""

    def __init__(self, code: str, message: str, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.code, self.message, self.params = code, message, params


@dataclass(frozen=True)
class SlideIdentity:
    """Everything of the case and slide a DICOM file names (UIDs from :mod:`.uids`)."""

    study_uid: str
    image_series_uid: str
    image_instance_uid: str          # the full-resolution level instance (served by DICOMweb)
    frame_of_reference_uid: str
    annotation_series_uid: str
    patient_id: str                  # the case's pseudonymised identifier, never a name
    accession_number: str            # the case number
    study_datetime: dt.datetime
    slide_uid: str
    slide_label: str
    width: float
    height: float


@dataclass
class AnnotationRecord:
    """One annotation as exchanged (geometry is GeoJSON; authors by platform id and username)."""

    uid: str
    geometry: dict[str, Any]
    object_type: str = "annotation"
    locked: bool = False
    class_name: str | None = None
    color: str | None = None
    name: str = ""
    comment: str = ""
    shape: str | None = None
    measurements: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    author_id: int | None = None
    author_username: str = ""
    author_name: str = ""


@dataclass
class ReadAnnotations:
    """What an import learnt from a file: records, whether the private block was authentic
    (then ``author_id``/``author_username`` of each record may be trusted) and the file's frame."""

    records: list[AnnotationRecord]
    referenced_series_uids: frozenset[str]   # the image series the 2D coordinates belong to
    authentic: bool
    with_metadata: bool


# ---------------------------------------------------------------- codes
def _short_code(prefix: str, text: str) -> str:
    """A code value (SH, at most 16 characters) that is the same for the same text."""
    return prefix + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12].upper()


def class_code(class_name: str | None) -> Code:
    name = class_name or UNCLASSIFIED
    return Code(_short_code("C", name), CODING_SCHEME, name[:64])


def measurement_code(name: str) -> Code:
    return Code(_short_code("M", name), CODING_SCHEME, name[:64] or "-")


NO_UNITS = Code("1", "UCUM", "no units")


# ---------------------------------------------------------------- source image
def _derived_uid(*parts: object) -> str:
    """A 2.25 UID that is the same for the same parts (as :mod:`.uids` does), for the UIDs only this
    instance uses: its annotation groups and the slide as specimen."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, chr(31).join(['pathology-hub', *map(str, parts)])).int}"


def source_image(ident: SlideIdentity) -> Dataset:
    """The minimal description of the referenced full-resolution level that highdicom needs:
    study, series, instance, frame of reference, modality and the pseudonymised patient; the
    specimen is the slide (its random uid, never a label that could carry a name)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = WSI_SOP_CLASS_UID
    ds.SOPInstanceUID = ident.image_instance_uid
    ds.StudyInstanceUID = ident.study_uid
    ds.SeriesInstanceUID = ident.image_series_uid
    ds.FrameOfReferenceUID = ident.frame_of_reference_uid
    ds.Modality = "SM"
    ds.PatientID = ident.patient_id[:64]
    ds.PatientName = f"{ident.patient_id[:60]}^"   # the pseudonym, as the DICOM WSI export writes it
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.AccessionNumber = ident.accession_number[:16]
    ds.StudyID = ident.accession_number[:16]
    ds.StudyDate = ident.study_datetime.strftime("%Y%m%d")
    ds.StudyTime = ident.study_datetime.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.ContainerIdentifier = ident.slide_uid[:64]
    specimen = Dataset()
    specimen.SpecimenIdentifier = ident.slide_uid[:64]
    specimen.SpecimenUID = _derived_uid("specimen", ident.slide_uid)
    ds.SpecimenDescriptionSequence = [specimen]
    return ds


# ---------------------------------------------------------------- geometry
def _xy(positions: Any) -> np.ndarray:
    return np.asarray(positions, dtype=np.float64)[:, :2].copy()


def _open_ring(ring: Any) -> np.ndarray:
    arr = _xy(ring)
    if len(arr) > 1 and np.array_equal(arr[0], arr[-1]):
        arr = arr[:-1]
    return arr


def decompose(geometry: dict[str, Any]) -> tuple[str, list[np.ndarray], Any]:
    """GeoJSON geometry → (DICOM graphic type, primitives, layout). ``layout`` says how to put
    the primitives together again: ``None`` (one primitive), ``{"points": n}``,
    ``{"rings": [k]}`` (a polygon with holes) or ``{"rings": [k1, k2, …]}`` (a MultiPolygon)."""
    kind, coords = geometry["type"], geometry["coordinates"]
    if kind == "Point":
        return "POINT", [_xy([coords])], None
    if kind == "MultiPoint":
        return "POINT", [_xy([p]) for p in coords], {"points": len(coords), "multi": True}
    if kind == "LineString":
        return "POLYLINE", [_xy(coords)], None
    if kind == "Polygon":
        rings = [_open_ring(r) for r in coords]
        return "POLYGON", rings, (None if len(rings) == 1 else {"rings": [len(rings)]})
    if kind == "MultiPolygon":
        rings = [_open_ring(r) for polygon in coords for r in polygon]
        return "POLYGON", rings, {"rings": [len(polygon) for polygon in coords], "multi": True}
    raise DicomAnnotationError("dicom_unsupported_geometry", "Geometry type %(type)s cannot be exchanged as DICOM.",
                               type=str(kind))


def _positions(arr: np.ndarray) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in np.asarray(arr, dtype=np.float64)[:, :2].tolist()]


def _closed(arr: np.ndarray) -> list[list[float]]:
    out = _positions(arr)
    return out + [list(out[0])] if out else out


def compose(graphic_type: str, primitives: Sequence[np.ndarray], layout: Any) -> tuple[dict[str, Any], str | None]:
    """Primitives of one annotation → (GeoJSON geometry, editor shape or None). The inverse of
    :func:`decompose`; RECTANGLE and ELLIPSE (only in other software's files) become polygons."""
    if graphic_type == "POINT":
        points = [_positions(p)[0] for p in primitives]
        if isinstance(layout, dict) and layout.get("multi"):
            return {"type": "MultiPoint", "coordinates": points}, None
        return {"type": "Point", "coordinates": points[0]}, None
    if graphic_type == "POLYLINE":
        return {"type": "LineString", "coordinates": _positions(primitives[0])}, None
    if graphic_type == "POLYGON":
        rings = [_closed(p) for p in primitives]
        counts = layout.get("rings") if isinstance(layout, dict) else [len(rings)]
        polygons, start = [], 0
        for k in counts:
            polygons.append(rings[start:start + k])
            start += k
        if isinstance(layout, dict) and layout.get("multi"):
            return {"type": "MultiPolygon", "coordinates": polygons}, None
        return {"type": "Polygon", "coordinates": polygons[0]}, None
    if graphic_type == "RECTANGLE":
        return {"type": "Polygon", "coordinates": [_closed(primitives[0])]}, "rectangle"
    if graphic_type == "ELLIPSE":
        (a, b, c, d) = primitives[0][:4]
        centre = (a + b) / 2
        major, minor = (b - a) / 2, (d - c) / 2
        t = np.linspace(0, 2 * math.pi, ELLIPSE_VERTICES, endpoint=False)
        ring = centre + np.outer(np.cos(t), major) + np.outer(np.sin(t), minor)
        return {"type": "Polygon", "coordinates": [_closed(ring)]}, "ellipse"
    raise DicomAnnotationError("dicom_unsupported_geometry", "Geometry type %(type)s cannot be exchanged as DICOM.",
                               type=graphic_type)


def _flat(coords: Any) -> list[Any]:
    if isinstance(coords, list):
        return [v for c in coords for v in _flat(c)]
    return [coords]


def int_spec(coords: Any) -> Any:
    """Which numbers of a geometry were JSON integers (``7100``, not ``7100.0``): DICOM stores
    floats only, and the stored GeoJSON text should come back character for character.
    ``True`` (all), ``False`` (none), else ``{"i": [flat indices]}`` or ``{"f": [...]}`` (floats)."""
    flat = _flat(coords)
    ints = [i for i, v in enumerate(flat) if isinstance(v, int) and not isinstance(v, bool)]
    if len(ints) == len(flat):
        return True
    if not ints:
        return False
    if len(ints) * 2 <= len(flat):
        return {"i": ints}
    ints_set = set(ints)
    return {"f": [i for i in range(len(flat)) if i not in ints_set]}


def apply_int_spec(coords: Any, spec: Any) -> Any:
    """The inverse of :func:`int_spec` on coordinates read back as floats."""
    if spec is True:
        test = lambda i: True  # noqa: E731
    elif isinstance(spec, dict) and isinstance(spec.get("i"), list):
        chosen = set(spec["i"])
        test = chosen.__contains__
    elif isinstance(spec, dict) and isinstance(spec.get("f"), list):
        chosen = set(spec["f"])
        test = lambda i: i not in chosen  # noqa: E731
    else:
        return coords
    counter = [0]

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        index = counter[0]
        counter[0] += 1
        return int(value) if test(index) and float(value).is_integer() else value
    return walk(coords)


# ---------------------------------------------------------------- integrity
def _group_digest(group: Dataset) -> bytes:
    """The bytes of a group that the private block's HMAC covers: label, graphic type,
    coordinates, point index list and every measurement's values and indices."""
    h = hashlib.sha256()
    for keyword in ("AnnotationGroupLabel", "GraphicType", "NumberOfAnnotations", "DoublePointCoordinatesData",
                    "PointCoordinatesData", "LongPrimitivePointIndexList"):
        value = group.get(keyword)
        h.update(keyword.encode() + b"=" + (value if isinstance(value, bytes) else str(value).encode()) + b";")
    for item in group.get("MeasurementsSequence", []):
        h.update(str(item.ConceptNameCodeSequence[0].CodeValue).encode())
        values = item.MeasurementValuesSequence[0]
        for keyword in ("FloatingPointValues", "AnnotationIndexList"):
            value = values.get(keyword)
            h.update(value if isinstance(value, bytes) else b"-")
    return h.digest()


def _mac(secret: str, metadata: bytes, groups: Iterable[Dataset]) -> str:
    mac = hmac.new(("dicom-annotations|" + secret).encode(), metadata, hashlib.sha256)
    for group in groups:
        mac.update(_group_digest(group))
    return mac.hexdigest()


# ---------------------------------------------------------------- export
def revision_of(states: Iterable[tuple[str, int]]) -> str:
    """A digest of (uid, version) of every live annotation: equal states give equal instance UIDs."""
    h = hashlib.sha256()
    for uid, version in sorted(states):
        h.update(f"{uid}:{version};".encode())
    return h.hexdigest()[:32]


def build_instance(ident: SlideIdentity, records: Sequence[AnnotationRecord], *, instance_uid: str, secret: str,
                   content_time: dt.datetime, instance_number: int = 1) -> Dataset:
    """The Bulk Simple Annotations instance (a pydicom Dataset ready to write) for ``records``.

    ``content_time`` is the time of the last change, so the same annotation state always gives
    the same instance (DICOMweb clients may cache it)."""
    groups: dict[tuple[str, str | None, int | None], list[tuple[AnnotationRecord, list[np.ndarray], Any]]] = {}
    for rec in records:
        graphic_type, primitives, layout = decompose(rec.geometry)
        groups.setdefault((graphic_type, rec.class_name, rec.author_id), []).append((rec, primitives, layout))
    hd_groups, meta_groups = [], []
    for number, ((graphic_type, class_name, _author), members) in enumerate(sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "", kv[0][2] or 0)), start=1):
        primitives: list[np.ndarray] = []
        names: list[str] = []
        for rec, _prims, _layout in members:
            for key in rec.measurements:
                if key not in names:
                    names.append(key)
        meta_items = []
        first_index: list[int] = []
        for rec, prims, layout in members:
            first_index.append(len(primitives))
            primitives.extend(prims)
            meta_items.append({
                "uid": rec.uid, "count": len(prims), "layout": layout, "int": int_spec(rec.geometry["coordinates"]),
                "objectType": rec.object_type, "locked": rec.locked, "color": rec.color, "name": rec.name,
                "comment": rec.comment, "shape": rec.shape, "measurements": rec.measurements, "extra": rec.extra,
                "author": {"id": rec.author_id, "username": rec.author_username, "name": rec.author_name},
            })
        measurements = []
        for name in names:
            values = np.full(len(primitives), np.nan, dtype=np.float64)
            for (rec, _p, _l), first in zip(members, first_index):
                value = rec.measurements.get(name)
                if value is not None:
                    values[first] = float(value)   # on the annotation's first primitive only
            if np.isnan(values).all():
                continue  # DICOM cannot store a column of nothing; the private block keeps the nulls
            measurements.append(hd.ann.Measurements(name=measurement_code(name), values=values, unit=NO_UNITS))
        author = members[0][0]
        group_uid = _derived_uid("annotation-group", instance_uid, number)
        hd_groups.append(hd.ann.AnnotationGroup(
            number=number, uid=group_uid, label=(class_name or UNCLASSIFIED)[:64],
            annotated_property_category=codes.SCT.Tissue, annotated_property_type=class_code(class_name),
            graphic_type=graphic_type, graphic_data=primitives, algorithm_type="MANUAL",
            measurements=measurements or None,
            description=f"Author: {author.author_name} ({author.author_username})"[:1024]))
        meta_groups.append({"number": number, "annotations": meta_items})
    ann = hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[source_image(ident)], annotation_coordinate_type="2D", annotation_groups=hd_groups,
        series_instance_uid=ident.annotation_series_uid, series_number=900, sop_instance_uid=instance_uid,
        instance_number=instance_number, manufacturer=MANUFACTURER, manufacturer_model_name=MANUFACTURER,
        software_versions="1", device_serial_number="1",
        content_description="Annotations of slide %s" % ident.slide_uid[:40], content_label="ANNOTATIONS")
    stamp = content_time.replace(tzinfo=None)
    for prefix in ("Content", "InstanceCreation", "Series"):
        setattr(ann, f"{prefix}Date", stamp.strftime("%Y%m%d"))
        setattr(ann, f"{prefix}Time", stamp.strftime("%H%M%S"))
    for item in ann.get("ContributingEquipmentSequence", []):  # highdicom stamps "now": same state, same bytes
        item.ContributionDateTime = stamp.strftime("%Y%m%d%H%M%S")
    ds = ann  # a pydicom Dataset subclass
    metadata = json.dumps({"format": 1, "slide": ident.slide_uid, "groups": meta_groups}, ensure_ascii=False,
                          separators=(",", ":"), allow_nan=False).encode("utf-8")
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(PRIVATE_METADATA, "UT", metadata.decode("utf-8"))
    block.add_new(PRIVATE_MAC, "LO", _mac(secret, metadata, ds.AnnotationGroupSequence))
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ---------------------------------------------------------------- import
def read_dataset(raw: bytes, *, limit: int) -> Dataset:
    """Parse a Part 10 file; refusals carry stable codes (never a pydicom stack trace)."""
    if len(raw) > limit:
        raise DicomAnnotationError("import_too_large", "The file is larger than %(mb)s MB.", mb=limit // 2**20)
    try:
        ds = pydicom.dcmread(io.BytesIO(raw))
        sop_class = str(ds.get("SOPClassUID", ""))
        if not sop_class:   # a DICOM preamble with nothing usable behind it
            raise InvalidDicomError("no SOP Class UID")
    except (InvalidDicomError, EOFError, ValueError, TypeError, KeyError, AttributeError, OSError):
        raise DicomAnnotationError("dicom_invalid", "The file is not a DICOM file.") from None
    if sop_class != ANN_SOP_CLASS_UID:
        name = getattr(pydicom.uid.UID(sop_class), "name", sop_class)
        raise DicomAnnotationError("dicom_wrong_sop_class",
                                   "The DICOM file is a %(sop_class)s, not Microscopy Bulk Simple Annotations.",
                                   sop_class=name or sop_class)
    return ds


def _private(ds: Dataset) -> tuple[bytes | None, str | None]:
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        return str(block[PRIVATE_METADATA].value).encode("utf-8"), str(block[PRIVATE_MAC].value)
    except (KeyError, ValueError):
        return None, None


def _group_values(group: hd.ann.AnnotationGroup) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    primitives = group.get_graphic_data("2D")
    names, values, _units = group.get_measurements()
    by_name = {str(code.meaning): values[:, i] for i, code in enumerate(names)}
    by_code = {str(code.value): values[:, i] for i, code in enumerate(names)}
    return primitives, {**by_name, **{"#" + k: v for k, v in by_code.items()}}


def _exact_measurements(claimed: Any, values: dict[str, np.ndarray], index: int) -> dict[str, float | None] | None:
    """The private exact values where they still match the file's float32 values; None = mismatch."""
    if not isinstance(claimed, dict):
        return None
    out: dict[str, float | None] = {}
    for name, exact in claimed.items():
        column = values.get("#" + measurement_code(str(name)).value)
        if column is None and exact is None:
            out[str(name)] = None     # a column of nulls only is not written (see build_instance)
            continue
        if column is None or index >= len(column):
            return None
        stored = float(column[index])
        if exact is None:
            if not math.isnan(stored):
                return None
            out[str(name)] = None
        elif isinstance(exact, (int, float)) and not isinstance(exact, bool) \
                and np.float32(exact) == np.float32(stored):
            out[str(name)] = exact
        else:
            return None
    return out


def _plain_measurements(values: dict[str, np.ndarray], index: int) -> dict[str, float | None]:
    return {name: float(column[index]) for name, column in values.items()
            if not name.startswith("#") and index < len(column) and not math.isnan(float(column[index]))}


def read_instance(ds: Dataset, *, secret: str) -> ReadAnnotations:
    """The annotations of a Bulk Simple Annotations dataset (already checked by :func:`read_dataset`)."""
    try:
        ann = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(ds, copy=False)
        coordinate_type = str(ds.get("AnnotationCoordinateType", ""))
        series = frozenset(str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])
                           if "SeriesInstanceUID" in item)
        groups = ann.get_annotation_groups()
        if coordinate_type != "2D":
            raise DicomAnnotationError("dicom_3d_coordinates",
                                       "The annotations use 3D slide coordinates; only 2D image coordinates "
                                       "(pixels of the full-resolution level) can be imported.")
        decoded = [(g, *_group_values(g)) for g in groups]
    except DicomAnnotationError:
        raise
    except Exception:  # highdicom/pydicom raise many types for malformed data; the user needs one answer
        raise DicomAnnotationError("dicom_invalid_annotations",
                                   "The DICOM annotations cannot be read (damaged or incomplete file).") from None
    metadata, mac = _private(ds)
    meta_groups: dict[int, list[dict[str, Any]]] = {}
    authentic = False
    if metadata is not None:
        try:
            doc = json.loads(metadata)
            meta_groups = {int(g["number"]): list(g["annotations"]) for g in doc["groups"]}
        except (ValueError, KeyError, TypeError):
            meta_groups = {}
        authentic = bool(meta_groups) and bool(secret) and mac is not None and hmac.compare_digest(
            mac, _mac(secret, metadata, ds.AnnotationGroupSequence))
    records: list[AnnotationRecord] = []
    used_metadata = True
    for group, primitives, values in decoded:
        graphic_type = group.graphic_type.value
        label = str(group.label)
        class_name = None if label == UNCLASSIFIED else label
        meta = meta_groups.get(int(group.number))
        if meta is not None and sum(int(m.get("count", 0)) for m in meta) != len(primitives):
            meta = None
        if meta is None:
            used_metadata = False
            for i, prim in enumerate(primitives):
                geometry, shape = compose(graphic_type, [prim], None)
                records.append(AnnotationRecord(uid="", geometry=geometry, class_name=class_name, shape=shape,
                                                measurements=_plain_measurements(values, i)))
            continue
        start = 0
        for item in meta:
            count = int(item["count"])
            geometry, shape = compose(graphic_type, primitives[start:start + count], item.get("layout"))
            geometry["coordinates"] = apply_int_spec(geometry["coordinates"], item.get("int"))
            measurements = _exact_measurements(item.get("measurements"), values, start)
            if measurements is None:
                measurements = _plain_measurements(values, start)
            author = item.get("author") if isinstance(item.get("author"), dict) else {}
            records.append(AnnotationRecord(
                uid=str(item.get("uid") or ""), geometry=geometry,
                object_type=str(item.get("objectType") or "annotation"), locked=bool(item.get("locked")),
                class_name=class_name, color=item.get("color"), name=str(item.get("name") or ""),
                comment=str(item.get("comment") or ""), shape=item.get("shape") or shape,
                measurements=measurements, extra=item.get("extra") if isinstance(item.get("extra"), dict) else {},
                author_id=author.get("id") if isinstance(author.get("id"), int) else None,
                author_username=str(author.get("username") or ""), author_name=str(author.get("name") or "")))
            start += count
    return ReadAnnotations(records=records, referenced_series_uids=series, authentic=authentic and used_metadata,
                           with_metadata=metadata is not None and used_metadata)
