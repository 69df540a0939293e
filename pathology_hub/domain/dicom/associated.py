"""Label and macro (overview) images as single-frame VL Whole Slide Microscopy Image instances.

These images can show the glass label (patient name, barcode), so they are only built for users the
caller has checked against ``slide.view_label`` (see :func:`.catalogue.allowed_associated`). They are
stored as PNG by ingest, so the one frame is a JPEG re-encoded from that PNG (quality 90).
"""

from __future__ import annotations

import io

from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from . import uids, wsi_dataset
from .wsi_dataset import SlideInfo

IMAGE_TYPE = {"label": "LABEL", "macro": "OVERVIEW"}
INSTANCE_NUMBER = {"label": 1001, "macro": 1002}
QUALITY = 90


def instance_uid(info: SlideInfo, name: str) -> str:
    return uids.associated_instance_uid(info.slide_uid, info.pyramid_version, name)


def jpeg_frame(png: bytes) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height) of a stored associated image."""
    with Image.open(io.BytesIO(png)) as img:
        rgb = img.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=QUALITY)
    return out.getvalue(), rgb.width, rgb.height


def associated_dataset(info: SlideInfo, name: str, width: int, height: int) -> Dataset:
    """Metadata of the label or macro instance (one frame of ``width`` x ``height``)."""
    top = info.geometry.max_level
    ds = wsi_dataset.level_dataset(info, top)
    kind = IMAGE_TYPE[name]
    ds.SOPInstanceUID = instance_uid(info, name)
    ds.InstanceNumber = INSTANCE_NUMBER[name]
    ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "NONE"]
    ds.Rows, ds.Columns = height, width
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.NumberOfFrames = 1
    ds.SpecimenLabelInImage = "YES"
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "01"
    # a macro spans the whole glass (about 25 x 75 mm); the label's scale is not known either
    spacing = 75.0 / max(width, height)
    ds.ImagedVolumeWidth = round(width * spacing, 6)
    ds.ImagedVolumeHeight = round(height * spacing, 6)
    shared = ds.SharedFunctionalGroupsSequence[0]
    shared.PixelMeasuresSequence[0].PixelSpacing = [round(spacing, 9), round(spacing, 9)]
    frame_type = Dataset()
    frame_type.FrameType = list(ds.ImageType)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([frame_type])
    return ds
