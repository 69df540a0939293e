"""Every slide format behind one interface, and the registry that picks the reader.

Adding a format is one module here with a :class:`~.base.SlideReader` subclass, one line in
:data:`WSI_READERS` (order matters: the first reader that detects *and opens* a file wins,
so a more specific reader goes before a more general one) and its test fixtures.

* :mod:`.channels`         fluorescence, multiplex and 16-bit TIFF (OME-TIFF, QPTIFF), channel by channel;
                           its per-channel view (``*.hubchannel.json``) feeds the pipeline one channel
* :mod:`.kfb`              KFBio .kfb (kfbslide, pure Python)
* :mod:`.openslide_reader` everything OpenSlide reads (SVS, NDPI, MRXS, SCN, BIF, DICOM...)
* :mod:`.dicom`            DICOM WSI that OpenSlide refuses (wsidicom)
* :mod:`.tiff`             tifffile: refusals and facts before decoding, the direct JPEG path
* :mod:`.photo`            camera photographs (Pillow), tried last

SQRAY .sdpc and UNIC .tmap have no redistributable reader: :mod:`..identify` recognises
them and ingest refuses them with a message naming the format (see :data:`REFUSED_VENDORS`).
"""

from __future__ import annotations

from typing import Any, Iterator

from ..identify import REFUSED_VENDORS, Magic, sniff
from . import tiff
from .base import ReaderError, SlideReader
from .channels import ChannelTiffReader, ChannelViewReader
from .dicom import WsiDicomReader
from .kfb import KfbReader
from .openslide_reader import FORMAT_LABELS as _OPENSLIDE_LABELS
from .openslide_reader import OpenSlideReader
from .photo import PhotoReader

#: Whole-slide readers, most specific first.
WSI_READERS: tuple[type[SlideReader], ...] = (KfbReader, ChannelTiffReader, OpenSlideReader, WsiDicomReader)
#: Readers the tiling source may open, in order (photos last: a TIFF is a slide first).
ALL_READERS: tuple[type[SlideReader], ...] = (ChannelViewReader, *WSI_READERS, PhotoReader)

#: Human names of detected formats, for messages.
FORMAT_LABELS = {**_OPENSLIDE_LABELS, "kfbio": "KFBio KFB", "ome-tiff": "OME-TIFF", "qptiff": "QPTIFF"}


def preflight(path: str, magic: Magic | None = None) -> Any:
    """Checks that run before any decoder touches the file; returns facts the readers miss.

    Today only TIFF has them (:func:`.tiff.inspect`: truncation, sample layouts the viewer would
    show wrong, QPTIFF pixel size, NDPI fluorescence). Raises SlideRejected with what was found.
    """
    magic = sniff(path) if magic is None else magic
    return tiff.inspect(path, magic)


def _claims(path: str, magic: Magic | None,
            readers: tuple[type[SlideReader], ...]) -> Iterator[tuple[type[SlideReader], str]]:
    """(reader class, detected format) for each reader that claims the file, asked one at a time:
    :func:`open_reader` stops at the first that opens it, so a later reader's detection (a second
    parse of a DICOM header, 2 ms) is not paid for a file an earlier one reads."""
    magic = sniff(path) if magic is None else magic
    for cls in readers:
        fmt = cls.detect(path, magic)
        if fmt is not None:
            yield cls, fmt


def candidates(path: str, magic: Magic | None = None,
               readers: tuple[type[SlideReader], ...] | None = None) -> list[tuple[type[SlideReader], str]]:
    """(reader class, detected format) for every reader that claims the file, in registry order
    (default: the whole-slide readers, :data:`WSI_READERS`)."""
    return list(_claims(path, magic, WSI_READERS if readers is None else readers))


def open_reader(path: str, magic: Magic | None = None,
                readers: tuple[type[SlideReader], ...] | None = None) -> SlideReader:
    """The first reader that detects and opens ``path``.

    Raises ReaderError naming every reader's reason when none can (the tiling source turns
    it into a TilingError; ingest has already refused such files with a precise message).
    """
    reasons = []
    for cls, fmt in _claims(path, magic, ALL_READERS if readers is None else readers):
        try:
            return cls(path, fmt)
        except cls.errors as exc:
            reasons.append(f"{cls.name}: {exc}")
    if not reasons:
        raise ReaderError("not a slide format any reader recognises")
    raise ReaderError("; ".join(reasons))


__all__ = [
    "ALL_READERS",
    "ChannelTiffReader",
    "ChannelViewReader",
    "FORMAT_LABELS",
    "REFUSED_VENDORS",
    "WSI_READERS",
    "KfbReader",
    "OpenSlideReader",
    "PhotoReader",
    "ReaderError",
    "SlideReader",
    "WsiDicomReader",
    "candidates",
    "open_reader",
    "preflight",
]
