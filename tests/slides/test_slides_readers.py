"""Issue #19: one reader interface; KFB read with kfbslide; DICOM WSI without ImageType read with wsidicom.

Every file is written by the suite from its format's layout (slides/synthetic_formats.py) and
cross-checked through the format's own reader, never through the writer. Pixels are compared
with the numpy source they were written from (JPEG at quality 95: a few grey levels).
"""

from __future__ import annotations

import io
from pathlib import Path

import kfbslide
import numpy as np
import pytest
from PIL import Image

from pathology_hub.slides import SlideRejected, extract_associated_images, inspect_slide
from pathology_hub.slides.readers import (KfbReader, OpenSlideReader, PhotoReader, SlideReader, WsiDicomReader,
                                          candidates, open_reader)
from pathology_hub.slides.synthetic import write_synthetic_slide
from pathology_hub.slides.synthetic_formats import pyramid, write_dicom_wsi, write_kfb
from pathology_hub.tiling.geometry import TILE_SIZE
from pathology_hub.tiling.source import SlideSource

MPP = 0.2428  # KFBio 40x scans; stored as float32 in the header


def _tissue(h: int, w: int, seed: int = 7) -> np.ndarray:
    """Background with a textured 'tissue' block, so means and percentiles say something."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 242, np.uint8)
    block = rng.integers(90, 210, (h // 2 // 8 + 1, w // 2 // 8 + 1, 3), dtype=np.uint8)
    img[h // 4:h // 4 + h // 2, w // 5:w // 5 + w // 2] = np.kron(block, np.ones((8, 8, 1), np.uint8))[:h // 2, :w // 2]
    return img


def _close(ours: np.ndarray, ref: np.ndarray) -> None:
    """Mean and percentiles per channel within JPEG error of the source."""
    ours, ref = ours.astype(float), ref.astype(float)
    assert ours.shape == ref.shape
    for c in range(3):
        assert abs(ours[..., c].mean() - ref[..., c].mean()) < 1.5
        for q in (5, 50, 95):
            assert abs(np.percentile(ours[..., c], q) - np.percentile(ref[..., c], q)) <= 4
    assert np.abs(ours - ref).mean() < 3


@pytest.fixture(scope="module")
def kfb(tmp_path_factory) -> tuple[Path, list[np.ndarray], np.ndarray, np.ndarray]:
    level0 = _tissue(900, 1300)
    levels = pyramid(level0, 3)
    label = np.zeros((120, 100, 3), np.uint8)
    label[:, :, 0] = 200  # red label
    macro = np.zeros((110, 300, 3), np.uint8)
    macro[:, :, 2] = 180  # blue macro
    path = write_kfb(tmp_path_factory.mktemp("kfb") / "scan.kfb", levels, mpp=MPP, magnification=40,
                     label=label, macro=macro)
    return path, levels, label, macro


def test_kfb_writer_is_read_back_by_kfbslide(kfb) -> None:
    path, levels, label, macro = kfb
    with kfbslide.OpenSlide(str(path)) as slide:
        assert slide.level_dimensions == ((1300, 900), (650, 450), (325, 225))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(MPP, rel=1e-6)
        assert slide.properties["openslide.objective-power"] == "40"
        assert slide.associated_images["label"].size == (100, 120)
        assert slide.associated_images["macro"].size == (300, 110)
        region = np.asarray(slide.read_region((0, 0), 2, (325, 225)).convert("RGB"))
    _close(region, levels[2])


def test_registry_picks_one_reader_per_format(kfb, tmp_path: Path) -> None:
    svs = write_synthetic_slide(tmp_path / "s.svs", 600, 400, levels=1)
    (tmp_path / "d").mkdir()
    dcm = write_dicom_wsi(tmp_path / "d" / "x.dcm", _tissue(300, 400), image_type=False)
    photo = tmp_path / "p.jpg"
    Image.new("RGB", (80, 60), "pink").save(photo)
    assert [c for c, _ in candidates(str(kfb[0]))] == [KfbReader]
    assert candidates(str(svs))[0] == (OpenSlideReader, "aperio")
    assert [c for c, _ in candidates(str(dcm))] == [OpenSlideReader, WsiDicomReader]
    for path, expected in ((kfb[0], KfbReader), (svs, OpenSlideReader), (dcm, WsiDicomReader), (photo, PhotoReader)):
        with open_reader(str(path)) as reader:
            assert type(reader) is expected
            assert reader.level_dimensions[0] == reader.dimensions


def test_open_reader_asks_no_reader_after_the_one_that_opens(tmp_path: Path, monkeypatch) -> None:
    """Readers are asked in order and the first that opens the file ends the search: a DICOM file
    OpenSlide opens is not parsed again by the wsidicom reader's detection; one it refuses is."""
    asked = []
    real = WsiDicomReader.detect.__func__
    monkeypatch.setattr(WsiDicomReader, "detect", classmethod(lambda cls, p, m: asked.append(p) or real(cls, p, m)))
    (tmp_path / "ok").mkdir()
    (tmp_path / "flavourless").mkdir()
    readable = write_dicom_wsi(tmp_path / "ok" / "x.dcm", _tissue(300, 400))
    refused = write_dicom_wsi(tmp_path / "flavourless" / "x.dcm", _tissue(300, 400), image_type=False)
    with open_reader(str(readable)) as reader:
        assert type(reader) is OpenSlideReader and asked == []
    with open_reader(str(refused)) as reader:
        assert type(reader) is WsiDicomReader and asked == [str(refused)]


def test_kfb_is_accepted_with_its_metadata_levels_label_and_macro(kfb) -> None:
    path, _, label, macro = kfb
    desc = inspect_slide(path)  # in the sandboxed probe, like every decoder
    assert (desc.kind, desc.format, desc.vendor) == ("wsi", "kfbio", "kfbio")
    assert (desc.width, desc.height, desc.level_count) == (1300, 900, 3)
    assert desc.level_downsamples == (1.0, 2.0, 4.0)
    assert desc.mpp_x == pytest.approx(MPP, rel=1e-6) and desc.mpp_source == "vendor"
    assert desc.objective_power == 40.0
    assert desc.associated_images == ("label", "macro")
    images = extract_associated_images(path)
    got_label = np.asarray(Image.open(io.BytesIO(images["label"])).convert("RGB"))
    got_macro = np.asarray(Image.open(io.BytesIO(images["macro"])).convert("RGB"))
    assert got_label.shape == label.shape and got_macro.shape == macro.shape
    assert abs(got_label[..., 0].mean() - 200) < 3 and abs(got_macro[..., 2].mean() - 180) < 3


def test_kfb_tiles_match_the_source_pixels(kfb) -> None:
    path, levels, _, _ = kfb
    source = SlideSource(str(path))
    try:
        assert source.reader_kind == "jpeg-direct"  # level 0 from the file's own JPEG tiles
        _close(source.read_l0(0, 0, 1300, 900), levels[0])
        slow = SlideSource(str(path), direct=False)  # the same pixels through kfbslide's read_region
        assert slow.reader_kind == "kfb"
        assert np.abs(slow.read_l0(0, 0, 1300, 900).astype(int) - source.read_l0(0, 0, 1300, 900)).max() <= 2
        slow.close()
        _close(source.read_l0(300, 200, 300 + TILE_SIZE, 200 + TILE_SIZE), levels[0][200:200 + TILE_SIZE, 300:300 + TILE_SIZE])
        level = source.scanner_level(2)
        assert level == 2 and source.exact_shift(level) == 2
        _close(source.read_level(level, 2, 0, 0, 325, 225), levels[2])
        # At depth 2 DeepZoomGenerator reads KFB level 2 through the same reader.
        g = source.geometry
        dz_level = g.max_level - 2
        x, y, w, h = g.tile_box(dz_level, 1, 0)
        _close(source.coarse_tile(dz_level, 1, 0), levels[2][y:y + h, x:x + w])
        assert set(source.associated()) == {"label", "macro"}
        assert source.thumbnail(256).size[0] == 256
    finally:
        source.close()


def test_kfb_decoded_tile_cache_stays_small(kfb, monkeypatch) -> None:
    """kfbslide would keep 256 MB of decoded tiles per open slide, in every tiling worker."""
    from pathology_hub.slides.readers import kfb as kfb_module

    monkeypatch.setattr(kfb_module, "TILE_CACHE_BYTES", 300_000)  # about one 256 px RGBA tile
    reader = KfbReader(str(kfb[0]))
    try:
        reader.read_region((0, 0), 0, (1300, 900))  # 24 tiles
        assert 0 < reader.slide.cache_info()["bytes"] <= 300_000
    finally:
        reader.close()


def test_damaged_kfb_tile_index_is_rejected_as_a_damaged_kfb(kfb, tmp_path: Path) -> None:
    data = bytearray(kfb[0].read_bytes())
    cut = tmp_path / "cut.kfb"
    cut.write_bytes(bytes(data[: len(data) // 2]))  # the tile index at the end is gone
    with pytest.raises(SlideRejected) as info:
        inspect_slide(cut)
    assert info.value.code == "corrupt_image" and info.value.params["format"] == "KFBio KFB"


def test_dicom_wsi_without_image_type_is_read_with_wsidicom(tmp_path: Path) -> None:
    level0 = _tissue(600, 700, seed=3)
    (tmp_path / "s").mkdir()
    path = write_dicom_wsi(tmp_path / "s" / "noflavor.dcm", level0, mpp=0.5, image_type=False)
    with pytest.raises(Exception, match="image flavor"):
        OpenSlideReader(str(path))  # the variant the testers met
    desc = inspect_slide(path)
    assert (desc.kind, desc.format, desc.width, desc.height) == ("wsi", "dicom", 700, 600)
    assert desc.mpp_x == pytest.approx(0.5) and desc.objective_power == 20.0
    source = SlideSource(str(path))
    try:
        assert source.reader_kind == "wsidicom"
        _close(source.read_l0(0, 0, 700, 600), level0)
    finally:
        source.close()


def test_dicom_wsi_without_any_flavour_stays_an_unsupported_variant(tmp_path: Path) -> None:
    path = write_dicom_wsi(tmp_path / "bare.dcm", _tissue(300, 300), image_type=False, frame_type=False)
    with pytest.raises(SlideRejected) as info:
        inspect_slide(path)
    err = info.value
    assert err.code == "unsupported_dicom"
    assert err.params["detail"] == "Couldn't get image flavor" and "damaged" not in err.message.split("not necessarily")[0]


class _ToyReader(SlideReader):
    """A made-up format (raw RGB after a 16-byte header): everything tiling needs is the interface."""

    name = "toy"

    def __init__(self, path: str, fmt: str | None = None) -> None:
        self.path, self.format = path, "toy"
        raw = Path(path).read_bytes()
        w, h = int.from_bytes(raw[8:12], "little"), int.from_bytes(raw[12:16], "little")
        self.pixels = np.frombuffer(raw[16:], np.uint8).reshape(h, w, 3)

    @classmethod
    def detect(cls, path: str, magic) -> str | None:
        return "toy" if Path(path).read_bytes()[:8] == b"TOYSLIDE" else None

    @property
    def level_dimensions(self):
        return ((self.pixels.shape[1], self.pixels.shape[0]),)

    @property
    def level_downsamples(self):
        return (1.0,)

    @property
    def properties(self):
        return {"openslide.vendor": "toy", "openslide.mpp-x": "0.5", "openslide.mpp-y": "0.5"}

    def read_region(self, location, level, size):
        x, y = location
        out = Image.new("RGBA", size, (0, 0, 0, 0))
        crop = self.pixels[max(y, 0):y + size[1], max(x, 0):x + size[0]]
        out.paste(Image.fromarray(np.ascontiguousarray(crop)), (max(-x, 0), max(-y, 0)))
        return out


def test_a_new_format_is_one_reader_and_its_registration(tmp_path: Path, monkeypatch) -> None:
    from pathology_hub.slides import readers
    from pathology_hub.tiling.render import tile_pixels

    pixels = _tissue(500, 600, seed=5)
    path = tmp_path / "scan.toy"
    path.write_bytes(b"TOYSLIDE" + (600).to_bytes(4, "little") + (500).to_bytes(4, "little") + pixels.tobytes())
    with pytest.raises(Exception, match="not a slide format"):
        SlideSource(str(path))
    monkeypatch.setattr(readers, "ALL_READERS", (_ToyReader, *readers.ALL_READERS))
    source = SlideSource(str(path))
    assert source.reader_kind == "toy" and source.geometry.width == 600
    top = source.geometry.max_level
    x, y, w, h = source.geometry.tile_box(top, 1, 1)
    assert np.array_equal(tile_pixels(source, top, 1, 1), pixels[y:y + h, x:x + w])
    assert source.read_l0(0, 0, 600, 500).tobytes() == pixels.tobytes()
    assert source.slide.describe().mpp_x == 0.5
    source.close()


def test_dicom_reader_never_mixes_in_another_series_from_the_same_folder(tmp_path: Path) -> None:
    ours = write_dicom_wsi(tmp_path / "z.dcm", _tissue(300, 400, seed=1), image_type=False)
    write_dicom_wsi(tmp_path / "b.dcm", _tissue(500, 700, seed=2), image_type=False)  # another slide's original
    with WsiDicomReader(str(ours)) as reader:
        assert reader.level_dimensions == ((400, 300),)
        _close(reader.read_rgb(0, 0, 0, 400, 300), _tissue(300, 400, seed=1))
