"""Parsing vendor properties into the description."""

from __future__ import annotations

import pytest

from pathology_hub.slides.metadata import MAX_PROPERTIES_BYTES, scan_date_from_properties, select_properties


@pytest.mark.parametrize(
    "props, expected",
    [
        ({"aperio.Date": "12/29/09", "aperio.Time": "09:59:15"}, "2009-12-29T09:59:15"),
        ({"aperio.Date": "12/29/09"}, "2009-12-29"),
        ({"dicom.AcquisitionDateTime": "20091229095915.123+0000"}, "2009-12-29T09:59:15"),
        ({"dicom.AcquisitionDate": "20091229"}, "2009-12-29"),
        ({"leica.creation-date": "2012-08-13T14:33:02.00Z"}, "2012-08-13T14:33:02"),
        ({"tiff.DateTime": "2017:02:07 13:06:43"}, "2017-02-07T13:06:43"),
        ({"aperio.Date": "garbage"}, None),
        ({}, None),
    ],
)
def test_scan_date(props: dict[str, str], expected: str | None) -> None:
    assert scan_date_from_properties(props) == expected


def test_selected_properties_drop_identifiers_and_stay_bounded() -> None:
    props = {
        "openslide.vendor": "dicom",
        "dicom.PatientName": "DOE^JOHN",
        "dicom.PatientID": "12345",
        "dicom.AccessionNumber": "A1",
        "aperio.Filename": "DOE JOHN 12345",
        "hamamatsu.Barcode": "S-1",
        "aperio.AppMag": "20",
        "vendor.blob": "x" * 5000,
    }
    props.update({f"vendor.k{i:04d}": "v" * 900 for i in range(200)})
    out = select_properties(props)
    assert out["openslide.vendor"] == "dicom" and out["aperio.AppMag"] == "20"
    for key in ("dicom.PatientName", "dicom.PatientID", "dicom.AccessionNumber", "aperio.Filename", "hamamatsu.Barcode"):
        assert key not in out
    assert "vendor.blob" not in out
    assert sum(len(k) + len(v) for k, v in out.items()) <= MAX_PROPERTIES_BYTES
    assert all(isinstance(v, str) for v in out.values())
