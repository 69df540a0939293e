"""Resumable (tus 1.0.0) uploads of slide files: protocol core and on-disk staging.

Framework-free; the Flask adapter lives in :mod:`pathology_hub.web.tus_adapter`.
"""

from .staging import StagingArea, UploadInfo, validate_upload_id
from .tus import ClientDisconnected, TusRequest, TusResponse, TusServer, UploadRefused

__all__ = [
    "ClientDisconnected",
    "StagingArea",
    "TusRequest",
    "TusResponse",
    "TusServer",
    "UploadInfo",
    "UploadRefused",
    "validate_upload_id",
]
