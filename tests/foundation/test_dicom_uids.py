"""The DICOM UIDs of :mod:`pathology_hub.domain.dicom.uids` are derived, so they must be the same on
every call and in every process, differ between things, and be valid 2.25 UIDs (ISO/IEC 9834-8)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from pydicom.uid import UID

from pathology_hub.domain.dicom import uids


def _all() -> list[str]:
    created = dt.datetime(2026, 1, 2, 3, 4, 5)
    return [uids.study_uid(7, created), uids.slide_series_uid("s1", 2), uids.level_instance_uid("s1", 2, 15),
            uids.associated_instance_uid("s1", 2, "label"), uids.frame_of_reference_uid("s1", 2),
            uids.annotation_series_uid("s1", 2), uids.annotation_instance_uid("s1", 2, "r1")]


def test_uids_are_stable_across_calls_and_processes():
    first = _all()
    assert first == _all()
    code = "from tests.foundation.test_dicom_uids import _all; print(','.join(_all()))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other.split(",") == first


def test_uids_are_distinct_valid_and_depend_on_every_part():
    values = _all()
    assert len(set(values)) == len(values)
    for value in values:
        assert value.startswith("2.25.") and len(value) <= 64 and UID(value).is_valid
        assert int(value[5:]) < 2**128
    assert uids.level_instance_uid("s1", 2, 15) != uids.level_instance_uid("s1", 3, 15)
    assert uids.slide_series_uid("s1", 23) != uids.slide_series_uid("s12", 3)
