"""Local pack copies for a remote store: same tiles, verified, bounded, filled in the background."""

from __future__ import annotations

import os
import time

import pytest

import storage
from pathology_hub.tiling import PyramidReader, build_pyramid
from pathology_hub.tiling.pack_cache import PackCache


@pytest.fixture
def pyramid(store, synthetic_slide):
    build_pyramid(str(synthetic_slide), store, "pyramids/pc/v0", workers=1)
    return "pyramids/pc/v0"


def _all_tiles(reader: PyramidReader) -> dict[tuple[int, int, int], bytes]:
    out = {}
    for level in range(reader.geometry.level_count):
        cols, rows = reader.geometry.level_tiles(level)
        for col in range(cols):
            for row in range(rows):
                out[(level, col, row)] = reader.tile(level, col, row)
    return out


def _wait_for_copies(cache: PackCache, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(cache.directory.glob("*.pack"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_cached_reader_serves_identical_tiles_and_fills_in_background(store, pyramid, tmp_path):
    plain = _all_tiles(PyramidReader(store, pyramid))
    cache = PackCache(store, tmp_path / "cache", 1 << 30)
    packs = PyramidReader(store, pyramid).manifest["packs"]

    first = PyramidReader(store, pyramid, cache)
    assert _all_tiles(first) == plain  # served from the store while copies are fetched
    _wait_for_copies(cache, len(packs))
    assert len(list(cache.directory.glob("*.pack"))) == len(packs)

    second = PyramidReader(store, pyramid, cache)
    reads: list[str] = []
    original = store.get_range
    store.get_range = lambda *a, **k: reads.append(a[0]) or original(*a, **k)  # type: ignore[method-assign]
    try:
        assert _all_tiles(second) == plain
    finally:
        store.get_range = original  # type: ignore[method-assign]
    assert reads == [], "with every pack copied, no tile may go to the store"


def test_a_copy_that_does_not_match_the_stored_sha256_is_rejected(store, pyramid, tmp_path):
    cache = PackCache(store, tmp_path / "cache", 1 << 30)
    name, pack = next(iter(PyramidReader(store, pyramid).manifest["packs"].items()))
    real_stream = store.open_stream

    def corrupted(key, **kwargs):
        for chunk in real_stream(key, **kwargs):
            yield bytes([chunk[0] ^ 0xFF]) + chunk[1:]
    store.open_stream = corrupted  # type: ignore[method-assign]
    try:
        assert cache.fetch_now(pack["key"], pack["size"]) is False
    finally:
        store.open_stream = real_stream  # type: ignore[method-assign]
    assert list(cache.directory.iterdir()) == [], "neither a copy nor a partial download may remain"
    assert cache.fetch_now(pack["key"], pack["size"]) is True
    copy = cache.reader(pack["key"], pack["size"])
    assert copy is not None and copy.read(0, pack["size"]) == store.get_bytes(pack["key"])


def test_the_folder_stays_under_its_bound(store, pyramid, tmp_path):
    packs = list(PyramidReader(store, pyramid).manifest["packs"].values())
    biggest = max(p["size"] for p in packs)
    bound = biggest + 1
    cache = PackCache(store, tmp_path / "cache", bound)
    for pack in packs:
        cache.fetch_now(pack["key"], pack["size"])
        assert cache.size_bytes() <= bound
    last = packs[-1]
    assert cache.reader(last["key"], last["size"]) is not None  # the newest copy is kept


def test_copies_of_different_stores_or_versions_do_not_collide(tmp_path, pyramid, store):
    other = storage.open_store(f"file://{tmp_path / 'other'}")
    a = PackCache(store, tmp_path / "cache", 1 << 30)
    b = PackCache(other, tmp_path / "cache", 1 << 30)
    pack = next(iter(PyramidReader(store, pyramid).manifest["packs"].values()))
    assert a._path(pack["key"], pack["size"]) != b._path(pack["key"], pack["size"])
    assert a._path(pack["key"], pack["size"]) != a._path(pack["key"], pack["size"] + 1)


def test_stale_partial_downloads_are_removed(store, tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    stale = folder / ".fetch-abc"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = folder / ".fetch-def"
    fresh.write_bytes(b"in progress")
    PackCache(store, folder, 1 << 20)
    assert not stale.exists() and fresh.exists()
