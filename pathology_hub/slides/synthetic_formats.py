"""Test slides in formats no scanner here produces: KFBio KFB and DICOM WSI variants.

Like :mod:`.synthetic` for SVS, the files are written from each format's layout, so the
suite and the benchmark can exercise a reader on pixels they know exactly. The writers
are checked by reading the files back through the format's independent reader
(``kfbslide``, ``wsidicom``/OpenSlide), never through this module.

KFB layout (as KFBio's own reader and ``kfbslide`` parse it; all little-endian):

* header section at byte 0: ``f1 01 ee ee``, a 96-byte payload, footer ``ff 01 ee ee``.
  Payload: ``KFB\\0`` magic, float32 version @8, uint32 tile count @12, height @16,
  width @20, scan magnification @24, ``JPEG`` @28, uint32 scan seconds @36, int64 scan
  time @40, uint32 offsets of the macro and label sections @48/@52, uint64 end and start of
  the tile index @56/@64, float32 µm per pixel @72, uint32 tile size @84;
* macro section ``f1 02 ee ee`` and label section ``f1 03 ee ee``: 44-byte payload with
  uint32 height @4, width @8, JPEG length @16 and the JPEG's offset from the section @20,
  a footer, then the JPEG;
* the tiles' JPEGs, back to back, in tile-index order, right after the label;
* the tile index: one 64-byte record per tile, uint32 x, y, width, height @4..@20 (level
  pixels), float32 magnification of its level @20 (40, 20, 10... for a 40x scan) and
  uint32 JPEG length @32.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def _jpeg(arr: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def pyramid(level0: np.ndarray, levels: int) -> list[np.ndarray]:
    """Level 0 and its 2x box-downsampled levels, each floor(size / 2^i) as KFB readers expect."""
    out = [level0]
    h, w = level0.shape[:2]
    for i in range(1, levels):
        img = Image.fromarray(level0).resize((w >> i, h >> i), Image.BOX)
        out.append(np.asarray(img))
    return out


def _image_section(kind: int, arr: np.ndarray, quality: int) -> bytes:
    data = _jpeg(arr, quality)
    h, w = arr.shape[:2]
    payload = bytearray(44)
    struct.pack_into("<IIII", payload, 4, h, w, 0, len(data))
    struct.pack_into("<I", payload, 20, 4 + 44 + 4)  # the JPEG follows the footer
    return bytes([0xF1, kind, 0xEE, 0xEE]) + bytes(payload) + bytes([0xFF, kind, 0xEE, 0xEE]) + data


def write_kfb(path: str | Path, levels: list[np.ndarray], *, mpp: float = 0.25, magnification: int = 40,
              tile: int = 256, label: np.ndarray | None = None, macro: np.ndarray | None = None,
              quality: int = 95, scan_time: int = 1_733_300_000) -> Path:
    """Write ``levels`` (RGB uint8, level i a 2^i downsample of level 0) as a KFB file."""
    height, width = levels[0].shape[:2]
    return _write_kfb(path, width, height, len(levels),
                      lambda i, x, y, w, h: levels[i][y:y + h, x:x + w],
                      mpp=mpp, magnification=magnification, tile=tile, label=label, macro=macro,
                      quality=quality, scan_time=scan_time)


def write_synthetic_kfb(path: str | Path, width: int, height: int, *, levels: int = 4, mpp: float = 0.25,
                        tile: int = 256, tissue_fraction: float = 0.5, seed: int = 0, quality: int = 90) -> Path:
    """A large H&E-like KFB (same tissue generator as the synthetic SVS), tile by tile, never whole in memory."""
    from .synthetic import _Generator

    gen = _Generator(width, height, tissue_fraction, seed, tile, max_down=1 << (levels - 1))
    return _write_kfb(path, width, height, levels,
                      lambda i, x, y, w, h: gen.tile_at(1 << i, x // tile, y // tile)[:h, :w],
                      mpp=mpp, magnification=40, tile=tile, label=None, macro=None, quality=quality,
                      scan_time=1_733_300_000)


def _write_kfb(path: str | Path, width: int, height: int, level_count: int, pixels, *, mpp: float,
               magnification: int, tile: int, label: np.ndarray | None, macro: np.ndarray | None,
               quality: int, scan_time: int) -> Path:
    """``pixels(level, x, y, w, h)`` gives each tile's RGB pixels; tiles are streamed to the file."""
    path = Path(path)
    if macro is None:
        macro = np.full((96, 256, 3), 230, np.uint8)
    if label is None:
        label = np.full((96, 96, 3), 250, np.uint8)
    header_len = 4 + 96 + 4
    macro_section = _image_section(0x02, macro, quality)
    label_section = _image_section(0x03, label, quality)
    macro_at = header_len
    label_at = macro_at + len(macro_section)
    records: list[bytes] = []
    with open(path, "wb") as fh:
        fh.write(bytes(header_len))  # the header is written last, once the index is placed
        fh.write(macro_section)
        fh.write(label_section)
        for i in range(level_count):
            scale = magnification / (1 << i)
            lw, lh = width >> i, height >> i
            for y in range(0, lh, tile):
                for x in range(0, lw, tile):
                    w, h = min(tile, lw - x), min(tile, lh - y)
                    data = _jpeg(np.ascontiguousarray(pixels(i, x, y, w, h)), quality)
                    rec = bytearray(64)
                    struct.pack_into("<IIIIf", rec, 4, x, y, w, h, scale)
                    struct.pack_into("<I", rec, 32, len(data))
                    fh.write(data)
                    records.append(bytes(rec))
        index_at = fh.tell()
        for rec in records:
            fh.write(rec)
        index_end = fh.tell()
        payload = bytearray(96)
        payload[0:4] = b"KFB\x00"
        struct.pack_into("<fIIII", payload, 8, 1.6, len(records), height, width, magnification)
        payload[28:32] = b"JPEG"
        struct.pack_into("<Iq", payload, 36, 600, scan_time)
        struct.pack_into("<IIQQf", payload, 48, macro_at, label_at, index_end, index_at, mpp)
        struct.pack_into("<I", payload, 84, tile)
        fh.seek(0)
        fh.write(bytes([0xF1, 0x01, 0xEE, 0xEE]) + bytes(payload) + bytes([0xFF, 0x01, 0xEE, 0xEE]))
    return path


#: VL Whole Slide Microscopy Image Storage.
WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def write_dicom_wsi(path: str | Path, level0: np.ndarray, *, mpp: float = 0.5, tile: int = 256,
                    image_type: bool = True, frame_type: bool = True, magnification: float = 20.0,
                    quality: int = 95) -> Path:
    """One VL Whole Slide Microscopy instance (TILED_FULL, JPEG baseline) holding ``level0``.

    ``image_type=False`` leaves out ImageType (0008,0008), the variant OpenSlide refuses with
    "Couldn't get image flavor"; ``frame_type=False`` also leaves out the per-frame Frame Type
    a reader could take the flavour from.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, generate_uid

    path = Path(path)
    height, width = level0.shape[:2]
    frames = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            part = np.full((tile, tile, 3), 255, np.uint8)
            src = level0[y:y + tile, x:x + tile]
            part[:src.shape[0], :src.shape[1]] = src
            frames.append(_jpeg(part, quality))
    flavour = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = WSM_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = WSM_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if image_type:
        ds.ImageType = flavour
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "SM"
    ds.Manufacturer = "Pathology Hub test writer"
    ds.PatientName, ds.PatientID, ds.StudyID, ds.AccessionNumber = "", "", "", ""
    ds.StudyDate = ds.ContentDate = ds.AcquisitionDate = "20261204"
    ds.StudyTime = ds.ContentTime = "120000"
    ds.AcquisitionDateTime = "20261204120000"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.VolumetricProperties = "VOLUME"
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.ContainerIdentifier = "SLIDE"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = ds.Columns = tile
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression = "01"
    ds.NumberOfFrames = len(frames)
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.NumberOfOpticalPaths = 1
    ds.ImagedVolumeWidth = width * mpp / 1000
    ds.ImagedVolumeHeight = height * mpp / 1000
    ds.ImagedVolumeDepth = 0.0
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0
    origin.YOffsetInSlideCoordinateSystem = 0
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    optical = Dataset()
    optical.OpticalPathIdentifier = "0"
    illumination = Dataset()
    illumination.CodeValue, illumination.CodingSchemeDesignator = "111744", "DCM"
    illumination.CodeMeaning = "Brightfield illumination"
    optical.IlluminationTypeCodeSequence = [illumination]
    colour = Dataset()
    colour.CodeValue, colour.CodingSchemeDesignator, colour.CodeMeaning = "414298005", "SCT", "Full Spectrum"
    optical.IlluminationColorCodeSequence = [colour]
    optical.ObjectiveLensPower = magnification
    ds.OpticalPathSequence = [optical]
    measures = Dataset()
    measures.PixelSpacing = [mpp / 1000, mpp / 1000]
    measures.SliceThickness = 0
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    if frame_type:
        frame = Dataset()
        frame.FrameType = flavour
        shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.is_little_endian, ds.is_implicit_VR = True, False
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path
