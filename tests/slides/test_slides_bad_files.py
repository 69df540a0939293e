"""Uploads that must be refused, each with its own code and a clear message."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from pathology_hub.slides import SlideRejected, inspect_slide


def _rejected(path: Path, **kw) -> SlideRejected:
    with pytest.raises(SlideRejected) as info:
        inspect_slide(path, **kw)
    return info.value


def test_corrupt_tile_svs(slides_dir: Path) -> None:
    err = _rejected(slides_dir / "bad" / "corrupt-tile.svs")
    assert err.code == "corrupt_image"
    assert "Aperio SVS" in err.message and "Bogus marker length" in err.message


def test_unsupported_compression_tiff(slides_dir: Path) -> None:
    err = _rejected(slides_dir / "bad" / "unsupported-compression.tiff")
    assert err.code == "unsupported_format"
    assert "compression" in err.message and "not a plain photo" in err.message


def test_text_renamed_svs(slides_dir: Path) -> None:
    err = _rejected(slides_dir / "bad" / "text-renamed.svs")
    assert err.code == "not_an_image"
    assert err.message == "The file is a text file renamed .svs; it is not an image."


def test_messages_never_contain_the_file_name(slides_dir: Path, tmp_path: Path) -> None:
    named = tmp_path / "DOE_JOHN_1970-01-01.svs"
    named.write_bytes((slides_dir / "bad" / "corrupt-tile.svs").read_bytes())
    err = _rejected(named)
    assert "DOE" not in err.message and str(tmp_path) not in err.message


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "x.svs"
    empty.touch()
    assert _rejected(empty).code == "empty_file"


def test_unknown_binary(tmp_path: Path) -> None:
    junk = tmp_path / "x.ndpi"
    junk.write_bytes(os.urandom(4096))
    err = _rejected(junk)
    assert err.code == "not_an_image"


def test_tiff_header_then_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.tif"
    bad.write_bytes(b"II*\x00\x08\x00\x00\x00" + bytes(range(256)) * 64)
    err = _rejected(bad)
    assert err.code == "corrupt_image"
    assert "TIFF" in err.message


def _tiled_tiff(path: Path) -> bytes:
    rgb = (np.random.default_rng(1).random((1024, 1024, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(path, rgb, tile=(256, 256), compression="jpeg", photometric="rgb")
    return path.read_bytes()


def test_tiled_tiff_with_directory_first_cut_short(tmp_path: Path) -> None:
    """Here the directory survives and only tile data is missing."""
    data = _tiled_tiff(tmp_path / "ok.tif")
    assert struct.unpack("<I", data[4:8])[0] < 64  # directory at the start
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * 0.9)])
    err = _rejected(cut)
    assert err.code == "truncated_file"


def test_garbage_in_last_tile_is_found_by_reading_pixels(tmp_path: Path) -> None:
    """Sizes intact, last tile overwritten: only decoding the last row/column finds it."""
    path = tmp_path / "ok.tif"
    data = bytearray(_tiled_tiff(path))
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[-1], tif.pages[0].databytecounts[-1]
    assert inspect_slide(path).format == "generic-tiff"
    data[offset : offset + count] = b"\x13" * count
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    err = _rejected(bad)
    assert err.code == "corrupt_image"
    assert "generic tiled TIFF" in err.message


def test_plain_jpeg_photo_is_accepted(tmp_path: Path) -> None:
    photo = tmp_path / "camera.jpg"
    rgb = np.full((600, 800, 3), 245, np.uint8)
    rgb[150:450, 200:600] = (180, 80, 150)  # a stained blob
    Image.fromarray(rgb).save(photo, quality=92)
    d = inspect_slide(photo)
    assert (d.kind, d.format, d.vendor) == ("photo", "jpeg", None)
    assert (d.width, d.height, d.level_count) == (800, 600, 1)
    assert d.quality is not None and "missing_mpp" in d.quality.codes
    assert d.quality.tissue_fraction == pytest.approx(0.25, abs=0.03)


def test_png_photo_is_accepted(tmp_path: Path) -> None:
    photo = tmp_path / "camera.bin"
    Image.new("RGB", (64, 48), (200, 100, 150)).save(photo, "PNG")
    d = inspect_slide(photo)
    assert (d.kind, d.format, d.width, d.height) == ("photo", "png", 64, 48)


def test_truncated_jpeg_photo(tmp_path: Path) -> None:
    buf = io.BytesIO()
    rgb = (np.random.default_rng(2).random((400, 400, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(buf, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    err = _rejected(cut)
    assert err.code == "truncated_file"


def _bomb_png(path: Path, side: int) -> None:
    """A valid 1-bit PNG of side × side pixels, a few hundred KB on disk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    # Identical rows: one fully-flushed raw deflate block of 1000 rows is
    # self-contained and can be repeated, so the data is deflated only once;
    # the zlib wrapper's Adler-32 is computed over the whole image.
    rows = row * 1000
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(rows) + comp.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(side // 1000):
        adler = zlib.adler32(rows, adler)
    idat = b"\x78\xda" + block * (side // 1000) + comp.flush() + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_bomb_png_fixture_is_valid(tmp_path: Path) -> None:
    small = tmp_path / "small.png"
    _bomb_png(small, 2000)
    image = Image.open(small)
    image.load()
    assert image.size == (2000, 2000) and image.mode == "1"


def test_decompression_bomb_png(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    _bomb_png(bomb, 30_000)
    assert bomb.stat().st_size < 1_000_000
    err = _rejected(bomb)
    assert err.code == "too_many_pixels"
    assert "200,000,000" in err.message


def test_photo_pixel_limit_is_configurable(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    Image.new("RGB", (300, 300), "white").save(photo)
    err = _rejected(photo, max_photo_pixels=50_000)
    assert err.code == "too_many_pixels"
    assert inspect_slide(photo, max_photo_pixels=100_000).kind == "photo"


def test_lone_mirax_index(tmp_path: Path) -> None:
    ini = tmp_path / "Slidedat.ini"
    ini.write_text("[GENERAL]\nSLIDE_VERSION = 01.03\nSLIDE_ID = abc\n")
    err = _rejected(ini)
    assert err.code == "unsupported_format" and ".zip" in err.message


def test_thumbnail_of_photo_and_of_corrupt_slide(slides_dir: Path, tmp_path: Path) -> None:
    from pathology_hub.slides import extract_associated_images, make_thumbnail

    photo = tmp_path / "p.jpg"
    Image.new("RGB", (2000, 1000), (220, 120, 170)).save(photo)
    thumb = Image.open(io.BytesIO(make_thumbnail(photo, (500, 500))))
    assert thumb.size == (500, 250)
    assert extract_associated_images(photo) == {}
    with pytest.raises(SlideRejected) as info:
        make_thumbnail(slides_dir / "bad" / "corrupt-tile.svs")
    assert info.value.code == "corrupt_image" and "Bogus marker length" in info.value.message
