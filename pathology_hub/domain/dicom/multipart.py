"""multipart/related bodies for WADO-RS (RFC 2387), as DICOMweb clients parse them."""

from __future__ import annotations

import uuid
from typing import Iterable


def encode(parts: Iterable[bytes], part_type: str, *, transfer_syntax: str | None = None) -> tuple[bytes, str]:
    """(body, Content-Type header) of a multipart/related message whose parts are all ``part_type``."""
    boundary = uuid.uuid4().hex
    part_header = f"Content-Type: {part_type}"
    if transfer_syntax:
        part_header += f";transfer-syntax={transfer_syntax}"
    chunks: list[bytes] = []
    for data in parts:
        chunks.append(f"--{boundary}\r\n{part_header}\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        content_type += f"; transfer-syntax={transfer_syntax}"
    return b"".join(chunks), content_type


def accepts(accept_header: str | None, part_type: str) -> bool:
    """Whether an Accept header allows a multipart/related response of ``part_type`` parts."""
    if not accept_header:
        return True
    for item in accept_header.split(","):
        media = item.strip().lower()
        if media.startswith("*/*") or media.startswith("multipart/related") and (
                "type=" not in media or part_type in media or 'type="*/*"' in media or "type=*/*" in media):
            return True
    return False


def frame_part_type(accept_header: str | None) -> str | None:
    """The part media type to answer a frames request with, or None when nothing acceptable is on offer.

    Frames exist only as JPEG baseline, so: ``image/jpeg`` (or ``*/*``, or no Accept) gets image/jpeg
    parts; ``application/octet-stream`` with ``transfer-syntax=*`` ("as stored", what
    dicom-microscopy-viewer asks for) gets the same bytes as octet-stream parts labelled with their
    transfer syntax; uncompressed octet-stream (no or another transfer syntax) is not offered."""
    if accepts(accept_header, "image/jpeg") and (not accept_header or "image/jpeg" in accept_header.lower()
                                                  or "*/*" in accept_header):
        return "image/jpeg"
    for item in (accept_header or "").split(","):
        media = item.strip().lower().replace(" ", "")
        if media.startswith("multipart/related") and "application/octet-stream" in media and (
                "transfer-syntax=*" in media or "transfer-syntax=1.2.840.10008.1.2.4.50" in media):
            return "application/octet-stream"
    return None
