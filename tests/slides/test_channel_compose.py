"""The colour composite of a channel image, and the fast level-0 path of channel images: integer
arithmetic and the direct RGB read must give exactly what the definitions say."""

from __future__ import annotations

import numpy as np

from pathology_hub.slides.readers.channels import colour_bytes, compose
from pathology_hub.tiling.source import SlideSource
from tests.slides.test_slides_faithful import write_qptiff


def test_compose_is_the_rounded_clipped_sum_of_tinted_channels():
    rng = np.random.default_rng(4)
    greys = [rng.integers(0, 256, (517, 300), dtype=np.uint8) for _ in range(6)]
    colours = ["0000ff", "00ff00", "ff0000", "ff00ff", "808040", "ff8000"]
    expected = np.clip(np.rint(sum(g.astype(np.float64)[..., None] * np.array(colour_bytes(c)) / 255.0
                                   for g, c in zip(greys, colours))), 0, 255).astype(np.uint8)
    assert np.array_equal(compose(greys, colours), expected)
    # Only full-strength channels (DAPI, FITC, TRITC, Cy5): the clipped sum of the channels feeding each component.
    bright = ["0000ff", "00ff00", "ff0000", "ff00ff"]
    sums = [greys[2].astype(int) + greys[3], greys[1].astype(int), greys[0].astype(int) + greys[3]]
    assert np.array_equal(compose(greys[:4], bright), np.clip(np.stack(sums, -1), 0, 255).astype(np.uint8))
    # One full-strength channel per component: the channel itself; no channel: black.
    one = compose(greys[:1], ["0000ff"])
    assert np.array_equal(one[..., 2], greys[0]) and not one[..., :2].any()


def test_direct_level0_of_channel_images_equals_their_read_region(tmp_path):
    """The composite and each channel view read as RGB arrays equal read_region's RGBA pasted
    onto the background, pixel for pixel (the tiles rendered from either are the same)."""
    from pathology_hub.slides.readers.channels import write_view

    path = tmp_path / "plex.qptiff"
    names = ["DAPI", "FITC", "Cy5"]
    write_qptiff(path, names, {"DAPI": "Blue", "FITC": "Green", "Cy5": "Magenta"}, size=(700, 900),
                 dtype=np.uint16)
    views = [str(path)] + [write_view(str(tmp_path), str(path), k, [(0.0, 400.0)] * 3) for k in range(3)]
    for view in views:
        fast, slow = SlideSource(view), SlideSource(view, direct=False)
        try:
            assert fast.reader_kind == slow.reader_kind and fast._direct is not None and slow._direct is None
            for box in [(0, 0, 900, 700), (13, 250, 611, 699), (800, 600, 900, 700)]:
                a, b = fast.read_l0(*box), slow.read_l0(*box)
                shape = (box[3] - box[1], box[2] - box[0])  # a channel view is grey: one sample per pixel
                assert a.shape == b.shape == (shape if fast.grey else (*shape, 3))
                assert fast.grey == (view != str(path))
                assert np.array_equal(a, b), (view, box)
            assert fast.read_l0(0, 0, 900, 700).any()
        finally:
            fast.close()
            slow.close()


def test_windowing_segment_by_segment_equals_windowing_the_region(tmp_path):
    """Reads windowed tile by tile (into the 8-bit result) give what windowing the raw region gives,
    inside the page, across its edge and beyond it."""
    import tifffile

    from pathology_hub.slides.readers.channels import Plane, PlaneReader, to_8bit

    rng = np.random.default_rng(7)
    for dtype, window in ((np.uint16, (37.5, 3000.25)), (np.uint8, (10.0, 200.0))):
        arr = rng.integers(0, 4000 if dtype == np.uint16 else 256, (700, 900)).astype(dtype)
        path = tmp_path / f"plane-{np.dtype(dtype).name}.tif"
        tifffile.imwrite(path, arr, tile=(256, 256), compression="zlib")
        with tifffile.TiffFile(path) as tif:
            plane, reader = Plane(tif.pages[0], 0), PlaneReader(str(path))
            try:
                for box in [(0, 0, 900, 700), (13, 250, 611, 699), (800, 600, 1000, 800)]:
                    raw = reader.read_channel(plane, *box)
                    assert np.array_equal(reader.read_channel(plane, *box, window=window), to_8bit(raw, window)), box
            finally:
                reader.close()
