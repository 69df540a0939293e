"""Recognise what an uploaded file is from its first bytes, never its name.

This runs in the web process, so it only reads a few kilobytes and parses
nothing: the native decoders that really open the file run in the sandboxed
probe (see :mod:`.sandbox`). The result decides which path the probe takes and
lets obviously wrong uploads (text, empty files, lone MIRAX index files) be
refused with a specific message without starting a child process.
"""

from __future__ import annotations

import enum
from pathlib import Path

#: How much of the file is read to decide; enough for the DICOM preamble and
#: for an INI-style index file's first section.
SNIFF_BYTES = 8192


class Magic(str, enum.Enum):
    """Content families the ingest pipeline treats differently."""

    EMPTY = "empty"
    TIFF = "tiff"  # classic and BigTIFF: SVS, NDPI, SCN, BIF, Philips, generic
    DICOM = "dicom"
    JPEG = "jpeg"
    PNG = "png"
    ZIP = "zip"
    SQLITE = "sqlite"  # Sakura SVSLIDE
    MRXS_INDEX = "mrxs_index"  # 3DHISTECH .mrxs (INI text, needs its folder)
    VMS_INDEX = "vms_index"  # Hamamatsu .vms/.vmu (INI text, needs its files)
    SDPC = "sdpc"  # SQRAY (生强) .sdpc: no redistributable reader, refused
    TMAP = "tmap"  # UNIC (优纳) .tmap: no redistributable reader, refused
    KFB = "kfb"  # KFBio (江丰) .kfb: read by slides.readers.kfb
    TEXT = "text"
    UNKNOWN = "unknown"


_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff_bytes(head: bytes) -> Magic:
    """Classify a file from its leading bytes (pure function, easy to test)."""
    if not head:
        return Magic.EMPTY
    if head[:4] in _TIFF_MAGICS:
        return Magic.TIFF
    if len(head) >= 132 and head[128:132] == b"DICM":
        return Magic.DICOM
    if head[:3] == b"\xff\xd8\xff":
        return Magic.JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return Magic.PNG
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return Magic.ZIP
    if head[:16] == b"SQLite format 3\x00":
        return Magic.SQLITE
    vendor = _vendor_signature(head)
    if vendor is not None:
        return vendor
    if _looks_like_text(head):
        return _classify_text(head)
    return Magic.UNKNOWN


def _vendor_signature(head: bytes) -> Magic | None:
    """Chinese scanners' own formats, by the signatures their readers check.

    Taken from the OpenSlide forks that read them: UNIC ``unic_tmap_open``
    compares the first 4 bytes with ``TMAP``; KFBio ``kfbio_kfb_open`` reads
    ``KFB`` at offset 4; SQRAY ``read_pic_head`` wants the little-endian
    uint16 0x5153 (``SQ``) first, followed by a 16-byte version string.
    """
    if head[:4] == b"TMAP":
        return Magic.TMAP
    if head[4:7] == b"KFB":
        return Magic.KFB
    if head[:2] == b"SQ" and len(head) >= 30 and b"\x00" in head[:64]:
        return Magic.SDPC
    return None


def sniff(path: str | Path) -> Magic:
    """Classify the file at ``path`` by content."""
    with open(path, "rb") as fh:
        return sniff_bytes(fh.read(SNIFF_BYTES))


def _looks_like_text(head: bytes) -> bool:
    """True when the bytes decode as UTF-8 and are almost all printable.

    A few binary formats start with ASCII, so a NUL byte or many control
    characters is enough to call it binary.
    """
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The sample may cut a multi-byte character in half at the end.
        try:
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return False
    if not text:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
    return printable / len(text) > 0.97


def _classify_text(head: bytes) -> Magic:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff").lower()
    if "[virtual microscope specimen]" in text:
        return Magic.VMS_INDEX
    if "[general]" in text and ("slide_id" in text or "slide_version" in text):
        return Magic.MRXS_INDEX
    return Magic.TEXT


#: Magic families that may hold a slide OpenSlide can read.
WSI_CANDIDATES = frozenset({Magic.TIFF, Magic.DICOM, Magic.SQLITE, Magic.UNKNOWN})
#: Magic families Pillow may read as a microscope-camera photo.
PHOTO_CANDIDATES = frozenset({Magic.JPEG, Magic.PNG, Magic.TIFF})

#: Scanner formats recognised by signature that no redistributable reader handles, refused
#: before the probe with a message naming them: (format name, scanner maker).
REFUSED_VENDORS = {
    Magic.SDPC: ("SQRAY SDPC", "SQRAY"),
    Magic.TMAP: ("UNIC TMAP", "UNIC"),
}
