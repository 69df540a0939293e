"""Real vendor slides, corrupt files and blank-tile detection."""

from __future__ import annotations

import numpy as np
import pytest

from pathology_hub.tiling import TilingError, build_pyramid
from pathology_hub.tiling.blank import is_blank, parse_colour

from .test_tiling_pipeline import check_pyramid

REAL = ["aperio-jpeg-CMU-1-Small-Region.svs", "aperio-jp2k-tcga-cr-7395.svs",
        "hamamatsu-fluorescence-DAPI.ndpi", "dicom-boxes_0.dcm", "dicom-boxes_1.dcm"]


@pytest.mark.parametrize("name", REAL)
def test_real_slide_tiles_correctly(shared_slides, store, name):
    result = build_pyramid(str(shared_slides / name), store, "real/v1", workers=2)
    expected_reader = "jpeg-direct" if name.startswith("aperio-jpeg") else "openslide"
    assert result.source_reader == expected_reader
    reader, medians = check_pyramid(shared_slides / name, store, "real/v1", samples_per_level=3)
    assert reader.manifest["colour"]["tiles"] == "sRGB"


def test_corrupt_real_slide_is_a_tiling_error(shared_slides, store):
    with pytest.raises(TilingError) as err:
        build_pyramid(str(shared_slides / "bad" / "corrupt-tile.svs"), store, "bad/v1", workers=1)
    assert err.value.reason and not store.exists("bad/v1/manifest.json")


def test_faint_speck_keeps_its_tile():
    tile = np.full((256, 256, 3), 255, np.uint8)
    rng = np.random.default_rng(0)
    tile -= rng.integers(0, 5, tile.shape, dtype=np.uint8)  # JPEG-like noise on glass
    assert is_blank(tile, (255, 255, 255))
    tile[100:103, 200:203] = (238, 226, 236)  # 3x3 px of very faint eosin
    assert not is_blank(tile, (255, 255, 255))


def test_black_background_is_respected():
    dark = np.zeros((64, 64, 3), np.uint8) + 3
    assert is_blank(dark, parse_colour("000000"))
    assert not is_blank(dark, parse_colour(None))  # default white: dark tissue is never "glass"
    dark[5, 5] = (40, 90, 200)  # one bright nucleus pixel on fluorescence
    assert not is_blank(dark, parse_colour("000000"))


def test_non_grey_background():
    bg = (240, 230, 250)
    tile = np.empty((32, 32, 3), np.uint8)
    tile[...] = bg
    assert is_blank(tile, bg)
    tile[0, 0, 1] = 230 + 9
    assert not is_blank(tile, bg)
