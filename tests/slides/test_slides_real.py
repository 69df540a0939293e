"""Every real scanner file in ../shared/slides is identified and described correctly."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from pathology_hub.slides import (
    SlideDescription,
    extract_associated_images,
    inspect_slide,
    make_thumbnail,
)


def test_aperio_jpeg(slides_dir: Path) -> None:
    d = inspect_slide(slides_dir / "aperio-jpeg-CMU-1-Small-Region.svs")
    assert (d.kind, d.format, d.vendor) == ("wsi", "aperio", "aperio")
    assert (d.width, d.height, d.level_count) == (2220, 2967, 1)
    assert d.level_dimensions == ((2220, 2967),)
    assert d.level_downsamples == (1.0,)
    assert d.mpp_x == pytest.approx(0.499) and d.mpp_y == pytest.approx(0.499)
    assert d.objective_power == 20.0
    assert d.scan_date == "2009-12-29T09:59:15"
    assert d.associated_images == ("label", "macro", "thumbnail")
    assert d.openable_path is None
    # Identifying properties never leave the probe.
    assert "aperio.Filename" not in d.properties and "aperio.User" not in d.properties
    assert d.properties["openslide.vendor"] == "aperio"
    assert d.quality is not None and d.quality.codes == []
    assert 0.2 < d.quality.tissue_fraction < 0.6


def test_aperio_jp2k_without_mpp_warns(slides_dir: Path) -> None:
    d = inspect_slide(slides_dir / "aperio-jp2k-tcga-cr-7395.svs")
    assert (d.format, d.width, d.height, d.level_count) == ("aperio", 4443, 3567, 2)
    assert d.level_dimensions == ((4443, 3567), (2221, 1783))
    assert d.mpp_x is None and d.mpp_y is None
    assert d.has_icc_profile is True
    assert d.quality is not None and d.quality.codes == ["missing_mpp"]


def test_hamamatsu_fluorescence_is_not_low_tissue(slides_dir: Path) -> None:
    d = inspect_slide(slides_dir / "hamamatsu-fluorescence-DAPI.ndpi")
    assert (d.format, d.vendor, d.width, d.height, d.level_count) == ("hamamatsu", "hamamatsu", 3968, 4864, 7)
    assert d.level_downsamples == (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    assert d.mpp_x == pytest.approx(0.228, abs=5e-4)
    assert d.objective_power == 40.0
    assert d.scan_date == "2017-02-07T13:06:43"
    assert d.quality is not None
    assert d.quality.dark_background is True
    assert "low_tissue" not in d.quality.codes and d.quality.tissue_fraction > 0.2
    assert "blurry" not in d.quality.codes


@pytest.mark.parametrize("name", ["dicom-boxes_0.dcm", "dicom-boxes_1.dcm"])
def test_dicom_single_file(slides_dir: Path, name: str) -> None:
    d = inspect_slide(slides_dir / name)
    assert (d.format, d.vendor, d.width, d.height) == ("dicom", "dicom", 16, 16)
    assert "dicom.PatientName" not in d.properties and "dicom.PatientID" not in d.properties
    assert d.scan_date == "2009-12-29T09:59:15"


def test_dicom_pair_zipped_is_accepted(slides_dir: Path, tmp_path: Path) -> None:
    upload = tmp_path / "upload.bin"  # no .zip name: identified by content
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(slides_dir / "dicom-boxes_0.dcm", "series/0001")
        zf.write(slides_dir / "dicom-boxes_1.dcm", "series/0002")
    d = inspect_slide(upload, extract_to=tmp_path / "x")
    assert (d.format, d.width, d.height) == ("dicom", 16, 16)
    assert d.openable_path == "slide/series/0001"
    assert (tmp_path / "x" / d.openable_path).is_file()
    assert (tmp_path / "x" / "slide" / "series" / "0002").is_file()


def test_zipped_single_svs(slides_dir: Path, tmp_path: Path) -> None:
    upload = tmp_path / "scan.zip"
    with zipfile.ZipFile(upload, "w", zipfile.ZIP_STORED) as zf:
        zf.write(slides_dir / "aperio-jpeg-CMU-1-Small-Region.svs", "CMU.svs")
    d = inspect_slide(upload)
    assert d.vendor == "aperio" and d.openable_path == "slide/CMU.svs"
    assert (tmp_path / "scan.zip.d" / "slide" / "CMU.svs").is_file()


def test_description_round_trips_through_json(slides_dir: Path) -> None:
    d = inspect_slide(slides_dir / "aperio-jpeg-CMU-1-Small-Region.svs")
    again = SlideDescription.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again == d


def test_associated_images_and_thumbnail(slides_dir: Path) -> None:
    svs = slides_dir / "aperio-jpeg-CMU-1-Small-Region.svs"
    images = extract_associated_images(svs)
    assert set(images) == {"label", "macro", "thumbnail"}
    macro = Image.open(io.BytesIO(images["macro"]))
    assert macro.format == "PNG" and macro.size == (1280, 431)
    thumb = Image.open(io.BytesIO(make_thumbnail(svs, (300, 300))))
    assert thumb.format == "JPEG" and max(thumb.size) == 300 and thumb.size[1] == 300


def test_truncated_svs_is_rejected(slides_dir: Path, tmp_path: Path) -> None:
    from pathology_hub.slides import SlideRejected

    data = (slides_dir / "aperio-jpeg-CMU-1-Small-Region.svs").read_bytes()
    cut = tmp_path / "cut.svs"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(SlideRejected) as info:
        inspect_slide(cut)
    assert info.value.code == "truncated_file"
    assert "incomplete" in info.value.message and "upload" in info.value.message


def test_copy_elsewhere_still_opens(slides_dir: Path, tmp_path: Path) -> None:
    """Renaming to a meaningless name changes nothing: identification is by content."""
    target = tmp_path / "upload-7f3a"
    shutil.copyfile(slides_dir / "hamamatsu-fluorescence-DAPI.ndpi", target)
    assert inspect_slide(target).vendor == "hamamatsu"
