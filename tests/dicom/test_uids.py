"""The derived DICOM UIDs must be the same on every call and in every process."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from pathology_hub.domain.dicom import uids


def test_uids_are_stable_and_distinct():
    when = dt.datetime(2026, 12, 4, 23, 51, 21, 24623)
    a = [uids.study_uid(1, when), uids.slide_series_uid("ab" * 16, 0), uids.level_instance_uid("ab" * 16, 0, 12),
         uids.frame_of_reference_uid("ab" * 16, 0), uids.annotation_series_uid("ab" * 16, 0)]
    b = [uids.study_uid(1, when), uids.slide_series_uid("ab" * 16, 0), uids.level_instance_uid("ab" * 16, 0, 12),
         uids.frame_of_reference_uid("ab" * 16, 0), uids.annotation_series_uid("ab" * 16, 0)]
    assert a == b
    assert len(set(a)) == len(a)
    assert uids.slide_series_uid("ab" * 16, 1) != a[1]  # a new pyramid version is a new series
    assert uids.study_uid(1, when.replace(tzinfo=dt.timezone.utc)) == a[0]
    for uid in a:
        assert uid.startswith("2.25.") and len(uid) <= 64 and int(uid[5:]) < 2 ** 128
    other = subprocess.run([sys.executable, "-c", "import datetime as dt; from pathology_hub.domain.dicom import uids;"
                            "print(uids.study_uid(1, dt.datetime(2026, 12, 4, 23, 51, 21, 24623)))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert other == a[0]
