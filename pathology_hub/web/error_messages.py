"""The one catalogue of error codes: code → a translatable message template with parameters.

Domain code raises :class:`~pathology_hub.domain.errors.DomainError` with a stable ``code``,
an English message id and its ``params``; the tus core, object storage and HTTP errors carry
a code too. The words a person reads are chosen here, in the reader's language
(Flask-Babel's locale: the user's setting, else Accept-Language), in this order:

1. a renderer for codes whose message is built from structured details (the slides that
   block a submission, the field a stain error is about…);
2. the raised message id itself, when ``messages.po`` translates it (exact wording of the
   raise site, parameters filled in);
3. the code's template below, filled from the error's params and details.

Every code raised anywhere must be in :data:`CODE_MESSAGES` and translated into Chinese;
tests/foundation/test_error_catalogue.py walks the source to enforce it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import catalogue

#: code → template.  Parameters are ``%(name)s`` from the error's params/details (missing → empty).
CODE_MESSAGES: dict[str, Any] = {
    # generic codes of the error classes (domain/errors.py)
    "bad_request": _l("The request is not valid."),
    "validation_failed": _l("Some of the information entered is not valid."),
    "not_found": _l("Not found."),
    "forbidden": _l("You do not have permission to do this."),
    "conflict": _l("This cannot be done in the current state; reload the page and try again."),
    "authentication_failed": _l("Sign-in failed."),
    "too_large": _l("The data sent is too large."),
    "not_ready": _l("Not ready yet; try again in a few seconds."),
    # IIIF Image API (domain/iiif.py, web/iiif.py)
    "iiif_bad_request": _l("This IIIF request is not valid."),
    "iiif_not_supported": _l("This IIIF feature is not offered (compliance level 0: the tiles listed in info.json)."),
    "tile_not_found": _l("No such tile."),
    # DICOMweb (web/dicomweb.py, domain/dicom/qido.py)
    "not_acceptable": _l("The requested format is not offered here."),
    "study_not_found": _l("No such study, or it is not visible to you."),
    "series_not_found": _l("No such series, or it is not visible to you."),
    "instance_not_found": _l("No such instance, or it is not visible to you."),
    "invalid_frame": _l("Frame numbers must be a comma-separated list of numbers from 1."),
    "frame_not_found": _l("No such frame."),
    "invalid_query": _l("The search parameters are not valid."),
    "unsupported_query_attribute": _l("This attribute cannot be searched on here."),
    # live session on a consultation (domain/live.py, web/live.py)
    "live_not_joined": _l("Join the live session first."),
    "live_not_presenter": _l("Only the presenter can do this; ask for control first."),
    "live_bad_target": _l("Choose a participant to hand control to."),
    "live_bad_message": _l("This live-session message is not understood."),
    "live_empty_chat": _l("Write a message first."),
    "live_chat_too_long": _l("A chat message may be at most %(limit)s characters."),
    "live_not_signed_in": _l("Sign in first."),
    # the frozen-section on-call roster
    "on_call_user_invalid": _l("Choose an active pathologist of your institution."),
    "on_call_time_missing": _l("Enter when the shift starts and ends."),
    "on_call_time_invalid": _l("The shift time is not a valid date and time."),
    "on_call_end_before_start": _l("The shift must end after it starts."),
    "on_call_too_long": _l("A shift can last at most 7 days."),
    "on_call_phone_invalid": _l("The phone number may contain only digits, spaces and + - ( )."),
    # accounts and sign-in
    "account_inactive": _l("This account is deactivated."),
    "account_locked": _l("Too many failed attempts; try again in %(retry_after_minutes)s minutes."),
    "invalid_credentials": _l("Wrong username or password."),
    "wrong_password": _l("The current password is not correct."),
    "invalid_password": _l("The password is not correct; the report was not signed."),
    "weak_password": _l("The password is too short."),
    "invalid_username": _l("Username must be 3–64 letters, digits, '.', '-' or '_'."),
    "username_taken": _l("This username is taken."),
    "name_required": _l("The name is required."),
    "invalid_role": _l("This role does not fit the institution."),
    "invalid_code": _l("Institution code must be 2–32 letters, digits, '-' or '_'."),
    "invalid_lis_host": _l("Enter the LIS host name or IP address."),
    "invalid_lis_port": _l("The LIS port must be a number from 1 to 65535."),
    "hl7_message_not_found": _l("This HL7 message does not exist."),
    "invalid_tier": _l("Unknown institution tier; use community, district or university."),
    "institution_exists": _l("An institution with this code already exists."),
    "institution_required": _l("Choose an institution."),
    "unknown_institution": _l("Unknown institution."),
    "unknown_user": _l("Unknown user."),
    "invalid_referral": _l("An institution can only refer to a higher tier."),
    "unknown_subspecialty": _l("Unknown subspecialty: %(codes)s. Choose one from the list."),
    # forms and request bodies
    "invalid_json": _l("The request body must be a JSON object."),
    "body_too_large": _l("The request body is larger than %(mb)s MB."),
    "json_too_deep": _l("The JSON document is nested too deeply."),
    "invalid_field": _l("A field has a value of the wrong type."),
    "missing_field": _l("A required field is missing."),
    "field_too_long": _l("A field is longer than allowed."),
    "invalid_characters": _l("A field contains characters that are not allowed."),
    "invalid_choice": _l("Choose a value from the list."),
    "invalid_number": _l("Enter a number."),
    "invalid_date": _l("Enter a date as YYYY-MM-DD."),
    "invalid_date_range": _l("The start date is after the end date."),
    "invalid_age": _l("Age must be a whole number of years between 0 and 130."),
    "confirmation_required": _l("Please confirm the withdrawal."),
    "csrf_failed": _l("The form expired or the CSRF token is missing; reload the page and try again."),
    "internal_error": _l("Something went wrong on the server (reference %(ref)s)."),
    "invalid_time_zone": _l("Unknown time zone; use an IANA name such as Asia/Shanghai or Europe/London."),
    # cases and consultations
    "case_number_taken": _l("This case number already exists at your centre."),
    "invalid_clinician": _l("The requesting clinician must be a clinician of your centre."),
    "invalid_transition": _l("This step is not possible while the consultation is %(state_label)s."),
    "unknown_transition": _l("Unknown transition."),
    "invalid_assignee": _l("The assignee must be an active pathologist of the receiving institution "
                           "who has not declined this request."),
    "invalid_expert": _l("The named expert must be an active pathologist of a higher-tier institution "
                         "in the referral network."),
    "no_pathologist_available": _l("No pathologist of the receiving institution is available."),
    "no_referral_target": _l("Your institution has no referral target configured."),
    "slides_not_ready": _l("The request cannot be submitted until every slide is ready."),
    "warnings_not_acknowledged": _l("The slides have quality-check warnings; acknowledge them to submit."),
    "result_version_outdated": _l("A newer version of the result is in force; read it before acknowledging."),
    "no_signed_result": _l("There is no signed result to acknowledge yet."),
    # reports and signing
    "report_exists": _l("This consultation already has a report."),
    "report_signed": _l("This report version is signed and can no longer be changed."),
    "report_version_conflict": _l("The report was changed elsewhere; your change was not saved. "
                                  "Reload the report and apply your change again."),
    "report_not_signed": _l("This report has no signed version yet."),
    "report_draft_exists": _l("A draft version exists; sign or edit it instead."),
    "report_already_cosigned": _l("This version already has a co-signature."),
    "report_integrity_failed": _l("The stored report PDF failed its integrity check and is not shown; "
                                  "the administrator has been informed."),
    "cosigner_is_signer": _l("The signer cannot co-sign their own report."),
    "password_required": _l("Enter your password to sign."),
    "addendum_changes_diagnosis": _l("An addendum adds information and keeps the diagnosis; "
                                     "write an amendment to change the diagnosis."),
    "invalid_state": _l("The report cannot be changed in the consultation's current state."),
    "revision_required": _l("Send the revision the change is based on."),
    "unknown_diagnosis_code": _l("Unknown diagnosis code; choose one from the list."),
    "too_many_figures": _l("The report holds the largest number of figures allowed."),
    "invalid_slide": _l("Choose a slide of this case."),
    "invalid_view_link": _l("The view link must be this case's viewer page in this application."),
    "pdf_missing": _l("The signed PDF of this version is missing."),
    "figure_bounds_invalid": _l("The figure region is not valid."),
    "figure_bounds_empty": _l("The figure region is empty."),
    "figure_bounds_outside": _l("The figure region lies outside the slide."),
    "figure_rotation_invalid": _l("The rotation must be a number of degrees."),
    "figure_shape_invalid": _l("An annotation drawn on the figure is not valid."),
    "figure_width_invalid": _l("The figure width must be a number of pixels."),
    "pyramid_missing": _l("The slide's tiled image is not stored."),
    # slides, ingest and viewing
    "slide_not_ready": _l("The slide is not ready for viewing yet."),
    "tile_not_ready": _l("This part of the slide is still being prepared; it appears in a few seconds."),
    "slide_locked": _l("This slide was submitted for consultation and can no longer be changed or withdrawn."),
    "slide_not_failed": _l("Only a slide whose processing failed can be retried."),
    "retry_not_allowed": _l("Only a technician of the slide's centre or an administrator can retry it."),
    "duplicate_slide": _l("This file is already slide %(label)s of this case."),
    "invalid_stain_category": _l("Choose a stain type from the list."),
    "invalid_stain_name": _l("H&E is its own stain type; choose H&E instead."),
    "unknown_case": _l("The upload must name an existing case."),
    "preview_invalid": _l("The preview is not valid (%(field)s); the slide itself still uploads."),
    "preview_too_large": _l("The preview is larger than %(max_bytes)s bytes."),
    "preview_too_late": _l("This upload is no longer receiving; a preview is not needed."),
    "slides_preview_only": _l("Slide %(labels)s is still a preview: its full-resolution image has not arrived. "
                              "Sign the report once it has."),
    # slides.plain_text raises code=f"invalid_{field}" for these upload metadata fields
    "invalid_filename": _l("The file name is too long or contains control characters."),
    "invalid_stain": _l("The stain is too long or contains control characters."),
    "missing_filename": _l("The upload must carry its file name."),
    "length_required": _l("Slides must be uploaded with a known length."),
    "invalid_sha256": _l("The checksum must be 64 lower-case hexadecimal digits."),
    "slide_too_large": _l("The file is larger than the largest slide accepted."),
    "quota_exceeded": _l("Your centre's storage quota would be exceeded."),
    "too_many_open_uploads": _l("You have too many unfinished uploads; finish or remove some first."),
    # annotations
    "annotation_locked": _l("This object was imported locked and cannot be changed."),
    "annotation_classes_misconfigured": _l("The annotation classes are misconfigured; tell the administrator."),
    "version_conflict": _l("The annotation was changed by someone else; reload it and apply your change again."),
    "version_required": _l("Send the version of the annotation you changed."),
    "invalid_version": _l("The annotation version is not valid."),
    "invalid_author": _l("The author must be a user id."),
    "invalid_bbox": _l("The region must be x0,y0,x1,y1 in slide pixels."),
    "invalid_geometry": _l("The shape is not a valid geometry."),
    "invalid_geojson": _l("The file is not valid GeoJSON."),
    "invalid_features": _l("Some features of the file are not valid; nothing was imported."),
    "import_too_large": _l("The file is too large to import."),
    "unknown_class": _l("Unknown annotation class; choose one from the list."),
    # DICOM annotation files (Supplement 222)
    "dicom_invalid": _l("The file is not a DICOM file."),
    "dicom_wrong_sop_class": _l("The DICOM file is a %(sop_class)s, not Microscopy Bulk Simple Annotations."),
    "dicom_invalid_annotations": _l("The DICOM annotations cannot be read (damaged or incomplete file)."),
    "dicom_3d_coordinates": _l("The annotations use 3D slide coordinates; only 2D image coordinates "
                               "(pixels of the full-resolution level) can be imported."),
    "dicom_other_slide": _l("These annotations were drawn on another slide. Import them onto this slide only if "
                            "it shows the same tissue in the same position."),
    "dicom_slide_not_ready": _l("The slide is still being processed; its annotations cannot be exported yet."),
    "dicom_unsupported_geometry": _l("Geometry type %(type)s cannot be exchanged as DICOM."),
    # uploads (tus protocol) and object storage
    "invalid_metadata": _l("The upload metadata is not valid."),
    "invalid_header": _l("An upload header is not valid."),
    "invalid_checksum": _l("The upload checksum is not valid."),
    "unsupported_checksum_algorithm": _l("The upload checksum algorithm is not supported."),
    "checksum_mismatch": _l("The data received does not match its checksum; send that part again."),
    "method_not_allowed": _l("This method is not allowed here."),
    "upload_not_found": _l("No such upload; it may have been cancelled or have expired."),
    "upload_locked": _l("Another request is writing to this upload; try again shortly."),
    "upload_expired": _l("The upload expired; start it again."),
    "upload_failed": _l("The upload failed."),
    "upload_storing": _l("Every byte of this upload arrived; it is being stored right now. "
                         "Check again in a few seconds."),
    "unsupported_version": _l("This upload protocol version is not supported."),
    "missing_length": _l("The size of the upload is missing."),
    "invalid_length": _l("The size of the upload is not valid."),
    "missing_offset": _l("The upload position is missing."),
    "offset_mismatch": _l("The upload position does not match what the server has; resume the upload."),
    "file_too_large": _l("The file is larger than the largest slide accepted."),
    "chunk_too_large": _l("A part of the upload is too large."),
    "exceeds_upload_length": _l("More data was sent than the declared size of the upload."),
    "unsupported_media_type": _l("The content type of the upload is not supported."),
    "incomplete_body": _l("The connection ended before the data was complete; the upload can be resumed."),
    "processing_failed": _l("The file arrived intact and is kept, but it could not be stored yet; "
                            "the server retries by itself."),
    "storage_unavailable": _l("Object storage is unavailable right now; please retry shortly."),
    "database_unavailable": _l("The database is unavailable right now; please retry shortly."),
    "storage_error": _l("Storage error."),
    "object_not_found": _l("The stored object was not found."),
    "storage_integrity": _l("A stored object failed its integrity check."),
    "invalid_key": _l("Invalid object reference."),
    # HTTP errors raised by Flask/Werkzeug (code = the status name in snake case)
    "unauthorized": _l("Please sign in."),
    "login_required": _l("Log in first (session or API token)."),
    "rate_limited": _l("Too many requests; wait a moment and try again."),
    "report_not_found": _l("This consultation has no report yet."),
    "unknown_code": _l("No signed report has this verification code."),
    "request_entity_too_large": _l("The data sent is too large."),
    "too_many_requests": _l("Too many requests; wait a moment and try again."),
    "service_unavailable": _l("The service is unavailable right now; please retry shortly."),
    "internal_server_error": _l("Something went wrong on the server."),
}


#: Field names as the forms show them, for messages about a field (``%(field)s``).
FIELD_LABELS: dict[str, Any] = {
    "case_number": _l("Case number"), "patient_pseudo_id": _l("Patient ID"), "patient_name": _l("Patient name"),
    "clinical_history": _l("Clinical history"), "specimen_type": _l("Specimen type"),
    "specimen_site": _l("Specimen site"), "sex": _l("Sex"), "priority": _l("Priority"),
    "question": _l("Clinical question"), "reason": _l("Reason"), "comment": _l("Comment"),
    "preliminary_opinion": _l("Preliminary opinion"), "follow_up_advice": _l("Follow-up advice"),
    "state": _l("State"), "flag": _l("Turnaround"), "sort": _l("Sort by"), "from": _l("From"), "to": _l("To"),
    "report_language": _l("Report language"),
    "stain": _l("Stain or marker"), "block_label": _l("Block / part"), "stain_category": _l("Stain type"),
}


def _gib(value: object) -> str:
    return f"{int(value) / 2**30:.1f}"  # type: ignore[arg-type]


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


# ---------------------------------------------------------------- renderers built from details
def _upload_storage(params: Mapping[str, Any]) -> str:
    return _("Every byte of the file arrived and is kept safely, but storage is unavailable right now. "
             "The upload finishes by itself when it is back; nothing needs to be sent again "
             "(next check in %(seconds)s s).", seconds=params.get("retry_after", 10))


def _too_many_open(params: Mapping[str, Any]) -> str:
    return _("You already have %(open)s unfinished uploads (at most %(limit)s). Finish or remove some "
             "of them, or wait until they expire, before starting another.",
             open=params["open"], limit=params["limit"])


def _quota(params: Mapping[str, Any]) -> str:
    return _("Your centre's storage quota (%(quota)s GiB) would be exceeded: %(used)s GiB used, "
             "this file is %(size)s GiB.", quota=_gib(params["quota_bytes"]),
             used=_gib(params["used_bytes"]), size=_gib(params["size"]))


def _unknown_subspecialty(params: Mapping[str, Any]) -> str:
    return _("Unknown subspecialty: %(codes)s. Choose one from the list.",
             codes=", ".join(str(c) for c in params.get("unknown", [])))


def _invalid_transition(params: Mapping[str, Any]) -> str:
    from .consultations import ACTION_LABELS, STATE_LABELS  # the words of the consultation pages
    state, transition = params.get("state", ""), params.get("transition", "")
    if transition in ACTION_LABELS:
        return _("“%(action)s” is not possible while the consultation is %(state_label)s.",
                 action=str(ACTION_LABELS[transition]), state_label=str(STATE_LABELS.get(state, state)))
    return _("This step is not possible while the consultation is %(state_label)s.",
             state_label=str(STATE_LABELS.get(state, state)))


def _slide_renderers() -> dict[str, Callable[[Mapping[str, Any], str], str | None]]:
    from . import slide_text
    return slide_text.RENDERERS


RENDERERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "storage_unavailable@upload": _upload_storage, "database_unavailable@upload": _upload_storage,
    "too_many_open_uploads": _too_many_open, "quota_exceeded": _quota,
    "unknown_subspecialty": _unknown_subspecialty, "invalid_transition": _invalid_transition,
}


def _locale() -> str:
    return str(get_locale() or "")


def render(code: str, message: str = "", params: Mapping[str, Any] | None = None,
           *, context: str = "") -> str:
    """The message for error ``code`` in the reader's language.

    ``message`` is the English message id as raised (with ``%(name)s`` placeholders filled
    from ``params``); ``params`` holds the error's parameters and details. ``context``
    distinguishes the same code in another setting (``"upload"``: the tus endpoint)."""
    values = dict(params or {})
    renderer = RENDERERS.get(f"{code}@{context}") if context else None
    renderer = renderer or RENDERERS.get(code)
    try:
        if renderer is not None:
            return renderer(values)
        text = _slide_renderers().get(code, lambda *_a: None)(values, message)
        if text:
            return text
    except (KeyError, TypeError, ValueError):
        pass
    field = values.get("field")
    if isinstance(field, str) and field in FIELD_LABELS:
        values["field"] = str(FIELD_LABELS[field])
    locale = _locale()
    if message and catalogue.has_translation(locale, message):
        return catalogue.render(locale, message, **values)
    template = CODE_MESSAGES.get(code)
    if template is not None:
        try:
            return str(template) % _Blank(values)
        except (TypeError, ValueError):
            return str(template)
    return message


def message_of(exc: Any) -> str:
    """The message of a domain error (``code``, ``template``, ``params``, ``details``) for the reader."""
    params = {**(getattr(exc, "details", None) or {}), **(getattr(exc, "params", None) or {})}
    return render(exc.code, getattr(exc, "template", None) or getattr(exc, "message", ""), params)


def localize_upload_error(code: str, message: str, details: dict) -> str:
    """The tus endpoint's errors (core and domain hooks), by code, in the uploader's language."""
    return render(code, message, details, context="upload")
