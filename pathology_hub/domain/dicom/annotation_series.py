"""A case's DICOM annotations as DICOMweb series, so PACS and viewers find them beside the slides.

The catalogue (:mod:`.catalogue`) knows slides only; this provider adds, for each READY slide the
user may view *and whose annotations the user may see*, one ``ANN`` series holding the slide's
Bulk Simple Annotations instance (Supplement 222). The instance is built on demand from the live
annotations (:mod:`.annotations_service`), so what DICOMweb serves is never a stale copy: its SOP
Instance UID changes with every edit. The annotation HMAC key is the deployment's secret key, as for
the viewer's export, so a file retrieved here and imported again keeps its authors.
"""

from __future__ import annotations

from io import BytesIO
from typing import Iterable

from pydicom import dcmread
from pydicom.dataset import Dataset

from ... import runtime
from ...models import Case, Slide, SlideStatus, User
from .. import policy, unit_of_work
from . import uids
from .annotations import to_bytes
from .annotations_service import annotation_instances
from .catalogue import DicomInstance, DicomSeries

#: Series numbers of annotation series start here (slide series are numbered 1, 2, …).
SERIES_NUMBER_BASE = 1000


def _instance(ds: Dataset) -> DicomInstance:
    data = to_bytes(ds)

    def metadata() -> Dataset:
        return dcmread(BytesIO(data))

    return DicomInstance(dataset=metadata, sop_class_uid=str(ds.SOPClassUID),
                         sop_instance_uid=str(ds.SOPInstanceUID), instance_number=int(ds.get("InstanceNumber", 1)),
                         number_of_frames=0, part10=lambda: data)


def annotation_series(user: User, case: Case) -> Iterable[DicomSeries]:
    """One ``ANN`` series per viewable slide with annotations the user may see (none otherwise)."""
    session = unit_of_work.current()
    secret = runtime.settings().secret_key
    slides: list[Slide] = [s for s in case.slides if s.status is SlideStatus.READY and policy.can(user, "slide.view", s)]
    out = []
    for number, slide in enumerate(slides, start=1):
        datasets = annotation_instances(session, user, slide, secret=secret)
        if not datasets:
            continue
        out.append(DicomSeries(series_uid=uids.annotation_series_uid(slide.uid, slide.pyramid_version),
                               modality="ANN", series_number=SERIES_NUMBER_BASE + number,
                               description=f"Annotations {slide.label or slide.uid}"[:64],
                               instances=[_instance(ds) for ds in datasets]))
    return out
