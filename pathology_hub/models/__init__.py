"""Persistence: SQLAlchemy models. Importing this package registers every table."""

from .accounts import ApiToken, AuditEvent, Institution, Role, Tier, User, UserSession, referral_links
from .base import Base, as_utc, utcnow
from .cases import Case, Priority, Sex, Slide, SlideStatus, StainCategory, StoredOriginal, Upload, UploadState
from .jobs import Job, JobState

__all__ = [
    "ApiToken", "AuditEvent", "Base", "Case", "Institution", "Job", "JobState", "Priority", "Role",
    "Sex", "Slide", "SlideStatus", "StainCategory", "StoredOriginal", "Tier", "Upload", "UploadState", "User",
    "UserSession", "as_utc", "referral_links", "utcnow",
]
from .consultations import Consultation, ConsultationEvent, ConsultationState, Notification  # noqa: E402,F401
from .annotations import Annotation  # noqa: E402,F401
from .reports import (Report, ReportFigure, ReportFile, ReportSignature, ReportVersion,  # noqa: E402,F401
                      ResultAcknowledgement)
from .audit_checkpoints import AuditCheckpoint  # noqa: E402,F401
from .frozen import FrozenPage, OnCallShift  # noqa: E402,F401
from .hl7 import Hl7Message  # noqa: E402,F401
