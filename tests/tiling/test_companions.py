"""A fluorescence slide's channel pyramids are rendered with its composite, from the channel data
the composite has just decoded: the same objects as building each pyramid on its own, with each
channel's full-resolution data decoded once instead of twice."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from pathology_hub.domain.slides.processing import build_slide_pyramids
from pathology_hub.slides.inspection import inspect_slide
from pathology_hub.slides.readers import shared_reads
from pathology_hub.slides.readers.channels import PlaneReader, write_view
from pathology_hub.tiling import build_pyramid, pipeline
from tests.slides.test_slides_faithful import write_qptiff


def _objects(store, prefix: str) -> dict[str, str]:
    """Every object under ``prefix`` by its name below it; manifests, which name their objects by
    full key, with the prefix taken out."""
    out = {}
    for info in store.list(prefix + "/"):
        data = store.get_bytes(info.key)
        if info.key.endswith(".json"):
            data = data.replace(f'"{prefix}/'.encode(), b'"')
        out[info.key[len(prefix):]] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture(params=[((1400, 2300), False), ((1100, 4300), True)], ids=["in-process", "two-blocks-on-the-pool"])
def multiplex(request, tmp_path, monkeypatch):
    """A 16-bit three-channel QPTIFF, rendered in this process or on the process pool."""
    size, pool = request.param
    if pool:
        monkeypatch.setattr(pipeline, "POOL_MIN_BLOCKS", 0)
    path = tmp_path / "plex.qptiff"
    write_qptiff(path, ["DAPI", "FITC", "Cy5"], {}, size=size, dtype=np.uint16)
    return str(path), list(inspect_slide(str(path)).channels), pool


def test_channel_pyramids_built_with_the_composite_equal_separate_builds(multiplex, store, tmp_path, monkeypatch):
    path, channels, pool = multiplex
    full_reads: Counter = Counter()
    real = PlaneReader.read_channel

    width = int(inspect_slide(path).width)

    def counting(self, plane, x0, y0, x1, y1, **window):
        if int(plane.page.imagewidth) == width and (x1 - x0) * (y1 - y0) >= 1024 * 1024:  # level-0 blocks
            full_reads[plane.page.index] += 1
        return real(self, plane, x0, y0, x1, y1, **window)
    monkeypatch.setattr(PlaneReader, "read_channel", counting)
    build_slide_pyramids(path, channels, store, "together")
    together = sum(full_reads.values())

    full_reads.clear()
    build_pyramid(path, store, "apart")
    windows = [tuple(c["window"]) for c in channels]
    for ch in channels:
        build_pyramid(write_view(str(tmp_path), path, int(ch["index"]), windows), store, f"apart/{ch['prefix']}")
    apart = sum(full_reads.values())

    assert _objects(store, "together") == _objects(store, "apart")
    assert len(_objects(store, "together/c2")) > 3
    assert not shared_reads.enabled()
    if not pool:  # (pool workers read in processes of their own, uncounted here)
        # Built apart, each block's channel data is decoded for the composite and again for the
        # channel; built together, once.
        assert apart > 0 and together * 2 == apart, (together, apart)


def test_shared_reads_are_taken_once_within_a_byte_bound():
    a, b = np.zeros(100, np.uint8), np.ones(100, np.uint8)
    shared_reads.put("a", a)
    assert shared_reads.take("a") is None  # off: nothing kept
    shared_reads.enable(150)
    try:
        shared_reads.put("a", a)
        assert shared_reads.take("a") is a and shared_reads.take("a") is None  # taken once
        shared_reads.put("a", a)
        shared_reads.put("b", b)  # over the bound: the oldest goes
        assert shared_reads.take("a") is None and shared_reads.take("b") is b
    finally:
        shared_reads.enable(0)


def test_a_companion_of_another_geometry_is_left_to_its_own_build(synthetic_slide, tmp_path, store):
    other = tmp_path / "plex.qptiff"
    write_qptiff(other, ["DAPI", "FITC"], {}, size=(300, 400), dtype=np.uint16)
    build_pyramid(str(synthetic_slide), store, "slide", companions=[(str(other), "other")])
    assert _objects(store, "slide") and not list(store.list("other/"))
