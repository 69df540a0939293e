"""A slide as a DICOM WSI series in a zip: one Part 10 file per pyramid level (and label/macro when the
user may see the label), written from the stored tiles.

Frames are the stored JPEG tiles byte for byte where a tile equals a frame (256-px pyramids without
overlap, except the padded edge tiles); overlap pyramids are cropped and re-encoded once
(:mod:`.frames`). Nothing of the source file's own metadata is copied: the patient module is the
case's pseudonymised identifier (:func:`.wsi_dataset.study_attributes`).
"""

from __future__ import annotations

import tempfile
import zipfile
from typing import IO, Callable

from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.filewriter import dcmwrite
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from . import associated as assoc
from . import frames as frame_source
from .wsi_dataset import TRANSFER_SYNTAX, SlideInfo, level_dataset

_BOT_LIMIT = 2**32 - 1  # beyond this, the Extended Offset Table


def _file_meta(ds) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = TRANSFER_SYNTAX
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _with_pixels(ds, parts: list[bytes]):
    ds.file_meta = _file_meta(ds)
    if sum(len(p) + 8 for p in parts) < _BOT_LIMIT:
        ds.PixelData = encapsulate(parts, has_bot=True)
    else:
        data, offsets, lengths = encapsulate_extended(parts)
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = data, offsets, lengths
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return ds


def write_zip(out: IO[bytes], info: SlideInfo, tiles: frame_source.TileSource,
              associated_png: Callable[[str], bytes | None]) -> list[str]:
    """Write the series into ``out`` as a zip; returns the file names written.

    ``associated_png(name)`` returns the stored PNG of ``label``/``macro`` (only called for names in
    ``info.associated``, which the caller filled from the label policy)."""
    names = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for index, level in enumerate(info.levels()):
            ds = level_dataset(info, level)
            parts = [frame_source.read_frame(tiles, level, n) for n in range(1, int(ds.NumberOfFrames) + 1)]
            name = f"{info.container_id or 'slide'}-level{index}.dcm".replace("/", "_")
            _write(zf, name, _with_pixels(ds, parts))
            names.append(name)
        for kind in info.associated:
            png = associated_png(kind)
            if png is None:
                continue
            jpeg, width, height = assoc.jpeg_frame(png)
            ds = assoc.associated_dataset(info, kind, width, height)
            name = f"{info.container_id or 'slide'}-{kind}.dcm".replace("/", "_")
            _write(zf, name, _with_pixels(ds, [jpeg]))
            names.append(name)
    return names


def _write(zf: zipfile.ZipFile, name: str, ds) -> None:
    # pydicom seeks while writing, a zip member stream cannot: a temporary file in between
    with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
        dcmwrite(tmp, ds, enforce_file_format=True)
        tmp.flush()
        zf.write(tmp.name, arcname=name)
