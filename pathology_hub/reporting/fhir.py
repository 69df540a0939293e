"""HL7 FHIR R4 ``DiagnosticReport`` export of a signed report version.

Hospital information systems import the signed PDF and the coded diagnosis through
this resource, so it carries the PDF itself (``presentedForm``) and the diagnosis as
``conclusionCode``. The subject is the pseudonymised patient identifier only: the
patient's name never leaves the platform in an export.

The report points to the case's images as an ``ImagingStudy`` (``imagingStudy``): one DICOM
study per case (its Study Instance UID as ``urn:dicom:uid`` identifier), one series per slide
(modality SM) and an ``Endpoint`` of type ``dicom-wado-rs`` whose address is the platform's
DICOMweb base, so a receiving system can open the slides. An amendment is ``status: amended``
and links the version it replaces (R4 extension ``diagnosticReport-replaces``; an addendum uses
``diagnosticReport-addendumOf``), by a versioned URL that answers with that version.

``validate_diagnostic_report`` checks what R4 requires of the elements emitted here
(cardinalities, value sets, primitive formats); it is not a full FHIR validator but it
does catch the mistakes that make a receiving system reject the resource.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re

from .document import ReportDocument

STATUSES = ("final", "amended", "appended")
#: R4 DiagnosticReport.status value set (required binding)
R4_STATUSES = ("registered", "partial", "preliminary", "final", "amended", "corrected",
               "appended", "cancelled", "entered-in-error", "unknown")

LOINC = "http://loinc.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
IDENTIFIER_SYSTEM = "urn:pathology-hub:report"
DICOM_UID_SYSTEM = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
ENDPOINT_CONNECTION_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
ENDPOINT_PAYLOAD_TYPE = "http://terminology.hl7.org/CodeSystem/endpoint-payload-type"
REPLACES_EXTENSION = "http://hl7.org/fhir/StructureDefinition/diagnosticReport-replaces"
ADDENDUM_OF_EXTENSION = "http://hl7.org/fhir/StructureDefinition/diagnosticReport-addendumOf"
MODALITY_DISPLAY = {"SM": "Slide Microscopy", "ANN": "Annotation"}
#: R4 ImagingStudy.status (required binding)
IMAGING_STUDY_STATUSES = ("registered", "available", "cancelled", "entered-in-error", "unknown")
PATIENT_SYSTEM = "urn:pathology-hub:patient"

CODE_SYSTEMS = {
    "icd-o-3": "http://terminology.hl7.org/CodeSystem/icd-o-3",
    "icdo3": "http://terminology.hl7.org/CodeSystem/icd-o-3",
    "icd-o": "http://terminology.hl7.org/CodeSystem/icd-o-3",
    "snomed": "http://snomed.info/sct",
    "snomed ct": "http://snomed.info/sct",
    "snomed-ct": "http://snomed.info/sct",
    "sct": "http://snomed.info/sct",
    "icd-10": "http://hl7.org/fhir/sid/icd-10",
    "icd10": "http://hl7.org/fhir/sid/icd-10",
}


def code_system_uri(system: str) -> str:
    """FHIR system URI for a configured code list name ("ICD-O-3", "SNOMED CT", or a URI)."""
    s = (system or "").strip()
    if re.match(r"^(https?|urn):", s):
        return s
    uri = CODE_SYSTEMS.get(s.lower())
    if uri is None:
        raise ValueError(f"unknown diagnosis code system {system!r} (use ICD-O-3, SNOMED CT or a URI)")
    return uri


def _instant(value: dt.datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("issued must be a timezone-aware datetime (FHIR instant needs an offset)")
    return value.isoformat(timespec="seconds")


def diagnostic_report(doc: ReportDocument, *, report_id: int, status: str, pdf: bytes, pdf_url: str,
                      issued: dt.datetime, imaging_study: dict | None = None, previous: dict | None = None,
                      previous_kind: str = "amendment") -> dict:
    """The FHIR R4 DiagnosticReport (JSON-ready dict) for one signed report version.

    ``imaging_study`` is the Reference to the case's ImagingStudy; ``previous`` the Reference to the
    version this one amends (``previous_kind`` "amendment") or adds to ("addendum")."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if not isinstance(pdf, (bytes, bytearray)) or not pdf:
        raise ValueError("the signed PDF is required for presentedForm")
    version_id = f"{doc.case_number}-v{doc.version}" if doc.case_number else f"v{doc.version}"
    resource: dict = {
        "resourceType": "DiagnosticReport",
        "id": str(report_id),
        "meta": {"versionId": str(doc.version)},
        "identifier": [{
            "use": "official",
            "system": IDENTIFIER_SYSTEM,
            "value": version_id,
        }],
        "status": status,
        "category": [{
            "coding": [{"system": V2_0074, "code": "PAT", "display": "Pathology (gross & histopath, not surgical)"}],
            "text": "Pathology",
        }],
        "code": {
            "coding": [{"system": LOINC, "code": "60567-5", "display": "Comprehensive pathology report panel"}],
            "text": doc.title or "Pathology consultation report",
        },
        "issued": _instant(issued),
    }
    if doc.patient_id:  # the pseudonym only: the patient's name never leaves the platform here
        resource["subject"] = {
            "type": "Patient",
            "identifier": {"system": PATIENT_SYSTEM, "value": doc.patient_id},
            "display": f"Patient {doc.patient_id}",
        }
    if doc.case_number:
        resource["identifier"].append({"use": "secondary", "system": "urn:pathology-hub:case",
                                       "value": doc.case_number})
    performers = []
    seen = set()
    for sig in doc.signatures:
        label = f"{sig.full_name} ({sig.institution})" if sig.institution else sig.full_name
        if label and label not in seen:
            seen.add(label)
            performers.append({"display": label})
    if doc.institution_name and doc.institution_name not in seen:
        performers.append({"display": doc.institution_name})
    if performers:
        resource["performer"] = performers
    if doc.diagnosis:
        resource["conclusion"] = doc.diagnosis
    if doc.diagnosis_code:
        coding = {"system": code_system_uri(doc.diagnosis_code_system), "code": doc.diagnosis_code}
        if doc.diagnosis_code_display:
            coding["display"] = doc.diagnosis_code_display
        resource["conclusionCode"] = [{"coding": [coding], "text": doc.diagnosis_code_display or doc.diagnosis
                                       or doc.diagnosis_code}]
    specimens = slide_specimens(doc)
    if specimens:
        resource["contained"] = specimens
        resource["specimen"] = [{"reference": f"#{sp['id']}", "display": sp["type"]["text"]} for sp in specimens]
    data = bytes(pdf)
    attachment = {
        "contentType": "application/pdf",
        "language": "zh-CN" if doc.language == "zh" else "en",
        "data": base64.b64encode(data).decode("ascii"),
        "url": pdf_url,
        "size": len(data),
        "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),
        "title": f"{doc.case_number} report version {doc.version} ({doc.version_kind})".strip(),
        "creation": _instant(issued),
    }
    if not pdf_url:
        del attachment["url"]
    resource["presentedForm"] = [attachment]
    if imaging_study:
        resource["imagingStudy"] = [imaging_study]
    if previous:
        url = ADDENDUM_OF_EXTENSION if previous_kind == "addendum" else REPLACES_EXTENSION
        resource["extension"] = [{"url": url, "valueReference": previous}]
    return resource


def dicomweb_endpoint(*, endpoint_id: str, address: str, name: str = "Pathology Hub DICOMweb") -> dict:
    """The R4 Endpoint of the platform's DICOMweb service (WADO-RS; QIDO-RS answers at the same base)."""
    return {
        "resourceType": "Endpoint", "id": endpoint_id, "status": "active",
        "connectionType": {"system": ENDPOINT_CONNECTION_TYPE, "code": "dicom-wado-rs", "display": "DICOM WADO-RS"},
        "name": name,
        "payloadType": [{"coding": [{"system": ENDPOINT_PAYLOAD_TYPE, "code": "any", "display": "Any"}],
                         "text": "DICOM"}],
        "payloadMimeType": ["application/dicom", "application/dicom+json", "image/jpeg"],
        "address": address,
    }


def imaging_study(*, resource_id: str, study_uid: str, patient_id: str, case_number: str,
                  started: dt.datetime | None, series: list[dict], dicomweb_url: str,
                  description: str = "Whole slide images") -> dict:
    """The R4 ImagingStudy of a case: the study UID, one series per slide, and the DICOMweb Endpoint
    (contained, so the reference always resolves). ``series`` items: ``uid``, ``number``,
    ``description``, optionally ``modality`` (default SM) and ``instances`` ([{uid, sop_class, number}])."""
    endpoint = dicomweb_endpoint(endpoint_id="dicomweb", address=dicomweb_url)
    resource: dict = {
        "resourceType": "ImagingStudy", "id": resource_id,
        "contained": [endpoint],
        "identifier": [{"use": "official", "system": DICOM_UID_SYSTEM, "value": f"urn:oid:{study_uid}"}],
        "status": "available",
        "modality": [{"system": DCM, "code": m, "display": MODALITY_DISPLAY.get(m, m)}
                     for m in dict.fromkeys(["SM", *(i.get("modality", "SM") for i in series)])],
        "subject": {"type": "Patient", "identifier": {"system": PATIENT_SYSTEM, "value": patient_id},
                    "display": f"Patient {patient_id}"},
        "endpoint": [{"reference": "#dicomweb", "display": "DICOMweb (WADO-RS)"}],
        "numberOfSeries": len(series),
        "description": description,
    }
    if case_number:
        resource["identifier"].append({"use": "secondary", "system": "urn:pathology-hub:case", "value": case_number})
    if started is not None:
        resource["started"] = _instant(started)
    out_series = []
    for item in series:
        modality = item.get("modality", "SM")
        entry: dict = {"uid": item["uid"], "number": int(item["number"]),
                       "modality": {"system": DCM, "code": modality, "display": MODALITY_DISPLAY.get(modality, modality)},
                       "endpoint": [{"reference": "#dicomweb"}]}
        if item.get("description"):
            entry["description"] = item["description"]
        instances = item.get("instances") or []
        if instances:
            entry["numberOfInstances"] = len(instances)
            entry["instance"] = [{"uid": i["uid"], "number": int(i["number"]),
                                  "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{i['sop_class']}"}}
                                 for i in instances]
        out_series.append(entry)
    if out_series:
        resource["series"] = out_series
    return resource


_IMAGING_ALLOWED = {"resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                    "modifierExtension", "identifier", "status", "modality", "subject", "encounter", "started",
                    "basedOn", "referrer", "interpreter", "endpoint", "numberOfSeries", "numberOfInstances",
                    "procedureReference", "procedureCode", "location", "reasonCode", "reasonReference", "note",
                    "description", "series"}
_UID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def validate_imaging_study(resource: dict) -> list[str]:
    """Problems of ``resource`` against FHIR R4 ImagingStudy (and its contained Endpoint); empty = valid."""
    problems: list[str] = []
    if not isinstance(resource, dict) or resource.get("resourceType") != "ImagingStudy":
        return ["resourceType must be 'ImagingStudy'"]
    for key, value in resource.items():
        if key not in _IMAGING_ALLOWED:
            problems.append(f"unknown element {key!r}")
        elif value is None or value == "" or value == [] or value == {}:
            problems.append(f"{key} must not be empty or null")
    if not (isinstance(resource.get("id"), str) and _ID_RE.match(resource["id"])):
        problems.append("id must be an id")
    if resource.get("status") not in IMAGING_STUDY_STATUSES:
        problems.append("status is required (1..1) and must be in the ImagingStudy status value set")
    if "subject" not in resource:
        problems.append("subject is required (1..1)")
    else:
        _check_reference(resource["subject"], "subject", problems)
    for i, ident in enumerate(resource.get("identifier") or []):
        if not isinstance(ident, dict) or not _nonempty_str(ident.get("value")):
            problems.append(f"identifier[{i}] must have a value")
        elif ident.get("system") == DICOM_UID_SYSTEM and not (
                ident["value"].startswith("urn:oid:") and _UID_RE.match(ident["value"][8:])):
            problems.append(f"identifier[{i}] must be urn:oid:<Study Instance UID>")
    for i, coding in enumerate(resource.get("modality") or []):
        _check_coding(coding, f"modality[{i}]", problems)
    if "started" in resource and not (isinstance(resource["started"], str) and _DATETIME_RE.match(resource["started"])):
        problems.append("started must be a FHIR dateTime")
    contained = {c.get("id"): c for c in resource.get("contained") or [] if isinstance(c, dict)}
    for cid, item in contained.items():
        if item.get("resourceType") == "Endpoint":
            problems.extend(f"contained Endpoint {cid}: {p}" for p in validate_endpoint(item))
    refs = list(resource.get("endpoint") or [])
    series = resource.get("series") or []
    if "numberOfSeries" in resource and resource["numberOfSeries"] != len(series):
        problems.append("numberOfSeries does not match the series listed")
    for i, s in enumerate(series):
        where = f"series[{i}]"
        if not isinstance(s, dict):
            problems.append(f"{where} must be an object")
            continue
        if not (isinstance(s.get("uid"), str) and _UID_RE.match(s["uid"]) and len(s["uid"]) <= 64):
            problems.append(f"{where}.uid is required and must be a DICOM UID")
        if "modality" not in s:
            problems.append(f"{where}.modality is required (1..1)")
        else:
            _check_coding(s["modality"], f"{where}.modality", problems)
        refs.extend(s.get("endpoint") or [])
        for j, inst in enumerate(s.get("instance") or []):
            if not (isinstance(inst.get("uid"), str) and _UID_RE.match(inst["uid"])):
                problems.append(f"{where}.instance[{j}].uid must be a DICOM UID")
            if "sopClass" not in inst:
                problems.append(f"{where}.instance[{j}].sopClass is required (1..1)")
        if "numberOfInstances" in s and s["numberOfInstances"] != len(s.get("instance") or []):
            problems.append(f"{where}.numberOfInstances does not match the instances listed")
    for i, ref in enumerate(refs):
        _check_reference(ref, f"endpoint[{i}]", problems)
        target = ref.get("reference", "") if isinstance(ref, dict) else ""
        if target.startswith("#") and contained.get(target[1:], {}).get("resourceType") != "Endpoint":
            problems.append(f"endpoint reference {target} does not resolve to a contained Endpoint")
    return problems


def validate_endpoint(resource: dict) -> list[str]:
    """Problems of an R4 Endpoint: status, connectionType, payloadType (1..*) and address are required."""
    problems: list[str] = []
    if resource.get("status") not in ("active", "suspended", "error", "off", "entered-in-error", "test"):
        problems.append("status is required and must be in the Endpoint status value set")
    if "connectionType" not in resource:
        problems.append("connectionType is required (1..1)")
    else:
        _check_coding(resource["connectionType"], "connectionType", problems)
    payload = resource.get("payloadType")
    if not isinstance(payload, list) or not payload:
        problems.append("payloadType is required (1..*)")
    else:
        for i, concept in enumerate(payload):
            _check_codeable(concept, f"payloadType[{i}]", problems)
    address = resource.get("address")
    if not (isinstance(address, str) and re.match(r"^https?://\S+$", address)):
        problems.append("address is required and must be a URL")
    return problems


STAIN_SYSTEM = "urn:pathology-hub:stain-category"
SLIDE_SYSTEM = "urn:pathology-hub:slide"
BLOCK_SYSTEM = "urn:pathology-hub:block"
STAIN_DISPLAY = {"he": "Hematoxylin and eosin", "ihc": "Immunohistochemistry", "special": "Special stain",
                 "fluorescence": "Fluorescence", "multiplex": "Multiplex"}


def slide_specimens(doc: ReportDocument) -> list[dict]:
    """One contained Specimen per slide examined: the slide (identifier, label), its block/part as
    ``parent`` and the stain as ``processing`` (category as a coding, marker in the text)."""
    out = []
    for i, s in enumerate(doc.slides, start=1):
        stain_text = " ".join(p for p in (STAIN_DISPLAY.get(s.stain_category, ""), s.stain_name) if p) \
            or s.stain_name or "unspecified"
        procedure: dict = {"text": stain_text}
        if s.stain_category:
            procedure["coding"] = [{"system": STAIN_SYSTEM, "code": s.stain_category,
                                    "display": STAIN_DISPLAY.get(s.stain_category, s.stain_category)}]
        specimen: dict = {
            "resourceType": "Specimen", "id": f"slide-{i}",
            "identifier": [{"system": SLIDE_SYSTEM, "value": s.uid or s.label}],
            "type": {"text": f"Slide {s.label}".strip()},
            "processing": [{"description": "Stain", "procedure": procedure}],
            "container": [{"identifier": [{"system": SLIDE_SYSTEM + "-label", "value": s.label}],
                           "description": "Glass slide"}],
        }
        if s.block_label:
            specimen["parent"] = [{"identifier": {"system": BLOCK_SYSTEM, "value": s.block_label},
                                   "display": f"Block {s.block_label}"}]
        if doc.patient_id:
            specimen["subject"] = {"identifier": {"system": PATIENT_SYSTEM, "value": doc.patient_id}}
        out.append(specimen)
    return out


# ---------------------------------------------------------------- validation

_CODE_RE = re.compile(r"^[^\s]+( [^\s]+)*$")
_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_URI_RE = re.compile(r"^\S+$")
_INSTANT_RE = re.compile(
    r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$")
_DATETIME_RE = re.compile(
    r"^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
    r"(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$")
_BASE64_RE = re.compile(r"^(\s*([0-9a-zA-Z+/=]){4}\s*)+$")
_MIME_RE = re.compile(r"^[a-z]+/[A-Za-z0-9.+\-]+(;.*)?$")

_ALLOWED = {"resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
            "modifierExtension", "identifier", "basedOn", "status", "category", "code", "subject",
            "encounter", "effectiveDateTime", "effectivePeriod", "issued", "performer",
            "resultsInterpreter", "specimen", "result", "imagingStudy", "media", "conclusion",
            "conclusionCode", "presentedForm"}
_LIST_ELEMENTS = {"identifier", "basedOn", "category", "performer", "resultsInterpreter", "specimen",
                  "result", "imagingStudy", "media", "conclusionCode", "presentedForm", "contained",
                  "extension", "modifierExtension"}


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _check_coding(coding: object, where: str, problems: list[str]) -> None:
    if not isinstance(coding, dict):
        problems.append(f"{where} must be an object")
        return
    if "system" in coding and not (_nonempty_str(coding["system"]) and _URI_RE.match(coding["system"])):
        problems.append(f"{where}.system must be a URI")
    if "code" in coding and not (_nonempty_str(coding["code"]) and _CODE_RE.match(coding["code"])):
        problems.append(f"{where}.code must be a FHIR code (no leading/trailing/double spaces)")
    if "display" in coding and not _nonempty_str(coding["display"]):
        problems.append(f"{where}.display must be a non-empty string")
    if not coding:
        problems.append(f"{where} must not be empty")


def _check_codeable(concept: object, where: str, problems: list[str], *, need_coding: bool = False) -> None:
    if not isinstance(concept, dict) or not concept:
        problems.append(f"{where} must be a non-empty CodeableConcept object")
        return
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        problems.append(f"{where}.coding must be an array")
        codings = []
    for i, c in enumerate(codings):
        _check_coding(c, f"{where}.coding[{i}]", problems)
    if "text" in concept and not _nonempty_str(concept["text"]):
        problems.append(f"{where}.text must be a non-empty string")
    if need_coding and not codings:
        problems.append(f"{where}.coding must contain at least one Coding")


def _check_reference(ref: object, where: str, problems: list[str]) -> None:
    if not isinstance(ref, dict) or not any(k in ref for k in ("reference", "identifier", "display")):
        problems.append(f"{where} must be a Reference with reference, identifier or display")
        return
    for key in ("reference", "display"):
        if key in ref and not _nonempty_str(ref[key]):
            problems.append(f"{where}.{key} must be a non-empty string")
    if "identifier" in ref:
        ident = ref["identifier"]
        if not isinstance(ident, dict) or not _nonempty_str(ident.get("value")):
            problems.append(f"{where}.identifier must be an Identifier with a value")


def validate_diagnostic_report(resource: dict) -> list[str]:
    """Problems of ``resource`` against FHIR R4 DiagnosticReport rules; empty list = valid."""
    problems: list[str] = []
    if not isinstance(resource, dict):
        return ["the resource must be a JSON object"]
    if resource.get("resourceType") != "DiagnosticReport":
        problems.append("resourceType must be 'DiagnosticReport'")
    for key, value in resource.items():
        if key not in _ALLOWED:
            problems.append(f"unknown element {key!r}")
        elif value is None or value == "" or value == [] or value == {}:
            problems.append(f"{key} must not be empty or null (FHIR forbids empty elements)")
        elif key in _LIST_ELEMENTS and not isinstance(value, list):
            problems.append(f"{key} must be an array (cardinality 0..*)")
    if "id" in resource and not (isinstance(resource["id"], str) and _ID_RE.match(resource["id"])):
        problems.append("id must be a string of 1-64 letters, digits, '-' or '.'")
    # status 1..1, required binding
    if "status" not in resource:
        problems.append("status is required (1..1)")
    elif resource["status"] not in R4_STATUSES:
        problems.append(f"status {resource['status']!r} is not in the R4 DiagnosticReport status value set")
    # code 1..1
    if "code" not in resource:
        problems.append("code is required (1..1)")
    else:
        _check_codeable(resource["code"], "code", problems)
    for i, ident in enumerate(resource.get("identifier") or [] if isinstance(resource.get("identifier"), list) else []):
        if not isinstance(ident, dict) or not _nonempty_str(ident.get("value")):
            problems.append(f"identifier[{i}] must have a value")
        elif "system" in ident and not _URI_RE.match(str(ident["system"])):
            problems.append(f"identifier[{i}].system must be a URI")
    for name in ("category", "conclusionCode"):
        items = resource.get(name)
        if isinstance(items, list):
            for i, concept in enumerate(items):
                _check_codeable(concept, f"{name}[{i}]", problems)
    if "subject" in resource:
        _check_reference(resource["subject"], "subject", problems)
    if isinstance(resource.get("performer"), list):
        for i, ref in enumerate(resource["performer"]):
            _check_reference(ref, f"performer[{i}]", problems)
    if "issued" in resource and not (isinstance(resource["issued"], str) and _INSTANT_RE.match(resource["issued"])):
        problems.append("issued must be a FHIR instant (YYYY-MM-DDThh:mm:ss with a time zone offset)")
    if "effectiveDateTime" in resource and not (
            isinstance(resource["effectiveDateTime"], str) and _DATETIME_RE.match(resource["effectiveDateTime"])):
        problems.append("effectiveDateTime must be a FHIR dateTime")
    if "conclusion" in resource and not _nonempty_str(resource["conclusion"]):
        problems.append("conclusion must be a non-empty string")
    if isinstance(resource.get("presentedForm"), list):
        for i, att in enumerate(resource["presentedForm"]):
            _check_attachment(att, f"presentedForm[{i}]", problems)
    _check_specimens(resource, problems)
    for i, ref in enumerate(resource.get("imagingStudy") or [] if isinstance(resource.get("imagingStudy"), list)
                            else []):
        _check_reference(ref, f"imagingStudy[{i}]", problems)
    for i, ext in enumerate(resource.get("extension") or [] if isinstance(resource.get("extension"), list) else []):
        if not isinstance(ext, dict) or not _nonempty_str(ext.get("url")):
            problems.append(f"extension[{i}] must have a url")
            continue
        values = [k for k in ext if k.startswith("value")]
        if len(values) != 1 and "extension" not in ext:
            problems.append(f"extension[{i}] must have exactly one value[x]")
        if ext["url"] in (REPLACES_EXTENSION, ADDENDUM_OF_EXTENSION):
            if "valueReference" not in ext:
                problems.append(f"extension[{i}] ({ext['url']}) must be a valueReference")
            else:
                _check_reference(ext["valueReference"], f"extension[{i}].valueReference", problems)
    return problems


def _check_specimens(resource: dict, problems: list[str]) -> None:
    """Contained Specimens need a resourceType and an id; ``specimen`` references must resolve to them."""
    contained = resource.get("contained") if isinstance(resource.get("contained"), list) else []
    ids = set()
    for i, item in enumerate(contained):
        if not isinstance(item, dict) or not _nonempty_str(item.get("resourceType")):
            problems.append(f"contained[{i}] must be a resource with a resourceType")
            continue
        if not (isinstance(item.get("id"), str) and _ID_RE.match(item["id"])):
            problems.append(f"contained[{i}].id must be an id")
            continue
        ids.add(item["id"])
        if item["resourceType"] == "Specimen":
            for j, proc in enumerate(item.get("processing") or []):
                if "procedure" in proc:
                    _check_codeable(proc["procedure"], f"contained[{i}].processing[{j}].procedure", problems)
            if "type" in item:
                _check_codeable(item["type"], f"contained[{i}].type", problems)
    for i, ref in enumerate(resource.get("specimen") or [] if isinstance(resource.get("specimen"), list) else []):
        _check_reference(ref, f"specimen[{i}]", problems)
        target = ref.get("reference", "") if isinstance(ref, dict) else ""
        if target.startswith("#") and target[1:] not in ids:
            problems.append(f"specimen[{i}].reference {target} does not resolve to a contained resource")


def _check_attachment(att: object, where: str, problems: list[str]) -> None:
    if not isinstance(att, dict):
        problems.append(f"{where} must be an Attachment object")
        return
    if "contentType" in att and not (isinstance(att["contentType"], str) and _MIME_RE.match(att["contentType"])):
        problems.append(f"{where}.contentType must be a MIME type")
    if "data" in att and "contentType" not in att:
        problems.append(f"{where}: att-1 contentType is required when data is present")
    raw = None
    if "data" in att:
        if not (isinstance(att["data"], str) and _BASE64_RE.match(att["data"])):
            problems.append(f"{where}.data must be base64Binary")
        else:
            try:
                raw = base64.b64decode(att["data"], validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"{where}.data is not valid base64")
    if "size" in att:
        if not isinstance(att["size"], int) or isinstance(att["size"], bool) or att["size"] < 0:
            problems.append(f"{where}.size must be an unsignedInt")
        elif raw is not None and att["size"] != len(raw):
            problems.append(f"{where}.size does not match the decoded data length")
    if "hash" in att:
        if not (isinstance(att["hash"], str) and _BASE64_RE.match(att["hash"])):
            problems.append(f"{where}.hash must be base64Binary")
        elif raw is not None and att["hash"] != base64.b64encode(hashlib.sha1(raw).digest()).decode("ascii"):
            problems.append(f"{where}.hash is not the base64 SHA-1 of the data")
    if "url" in att and not (_nonempty_str(att["url"]) and _URI_RE.match(att["url"])):
        problems.append(f"{where}.url must be a URL")
    if "language" in att and not (isinstance(att["language"], str) and _CODE_RE.match(att["language"])):
        problems.append(f"{where}.language must be a code")
    if "title" in att and not _nonempty_str(att["title"]):
        problems.append(f"{where}.title must be a non-empty string")
    if "creation" in att and not (isinstance(att["creation"], str) and _DATETIME_RE.match(att["creation"])):
        problems.append(f"{where}.creation must be a FHIR dateTime")
