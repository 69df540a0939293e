"""Safe unpacking of multi-file uploads."""

from __future__ import annotations

import stat
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from pathology_hub.slides import SlideRejected, find_openable, inspect_slide, safe_extract_zip


def _zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def _rejected_extract(zip_path: Path, dest: Path, **kw) -> SlideRejected:
    with pytest.raises(SlideRejected) as info:
        safe_extract_zip(zip_path, dest, **kw)
    # Nothing half-extracted remains: no final folder, no staging folder.
    assert list(dest.iterdir()) == []
    return info.value


def test_extracts_nested_files(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", {"dir/a.txt": b"A", "dir/sub/b.txt": b"B" * 10})
    root = safe_extract_zip(z, tmp_path / "out")
    assert root == tmp_path / "out" / "slide"
    assert (root / "dir" / "a.txt").read_bytes() == b"A"
    assert (root / "dir" / "sub" / "b.txt").read_bytes() == b"B" * 10
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["slide"]


@pytest.mark.parametrize("name", ["../evil.txt", "dir/../../evil.txt", "..\\evil.txt"])
def test_parent_paths_are_refused(tmp_path: Path, name: str) -> None:
    z = _zip(tmp_path / "a.zip", {"ok.txt": b"fine", name: b"evil"})
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "unsafe_archive" and "outside" in err.message
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.parametrize("name", ["/etc/evil.txt", "C:/evil.txt", "\\\\server\\evil.txt"])
def test_absolute_paths_are_refused(tmp_path: Path, name: str) -> None:
    z = _zip(tmp_path / "a.zip", {"ok.txt": b"fine", name: b"evil"})
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "unsafe_archive" and "absolute" in err.message


def test_symlinks_are_refused(tmp_path: Path) -> None:
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "unsafe_archive" and "link" in err.message


def _zeros_bomb(path: Path, gib: int = 1) -> None:
    """A valid zip declaring ``gib`` GiB of zeros in about 1 MB.

    Built from one fully-flushed deflate block repeated (each such block is
    self-contained), which takes a second where zipfile's own compressor
    would spend 20 s deflating a real gigabyte.
    """
    chunk = bytes(1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    count = gib << 10
    data = block * count + comp.flush()
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    size, name = count << 20, b"zeros.bin"
    local = struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0)
    central = struct.pack(
        "<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
    )
    cd_offset = len(local) + len(name) + len(data)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), cd_offset, 0)
    path.write_bytes(local + name + data + central + name + end)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    z = tmp_path_factory.mktemp("bomb") / "bomb.zip"
    _zeros_bomb(z)
    return z


def test_zip_bomb_fixture_is_a_real_bomb(bomb: Path) -> None:
    z = bomb
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("zeros.bin")
        assert info.file_size == 1 << 30
        with zf.open(info) as fh:
            assert fh.read(8 << 20) == bytes(8 << 20)  # inflates as declared


def test_zip_bomb_is_stopped_before_writing(bomb: Path, tmp_path: Path) -> None:
    """1 GiB of zeros declared in a ~1 MB archive; refused from the directory alone."""
    z = bomb
    assert z.stat().st_size < 2 << 20
    started = time.monotonic()
    err = _rejected_extract(z, tmp_path / "out")
    assert time.monotonic() - started < 1
    assert err.code == "unsafe_archive" and "zip bomb" in err.message


def test_total_size_limit(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", {"a": bytes(3000), "b": bytes(3000)}, zipfile.ZIP_STORED)
    err = _rejected_extract(z, tmp_path / "out", max_total_bytes=5000)
    assert err.code == "archive_too_large"


def test_file_count_limit(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", {f"f{i}": b"x" for i in range(20)})
    err = _rejected_extract(z, tmp_path / "out", max_files=10)
    assert err.code == "archive_too_large" and "20 files" in err.message


def test_sizes_lying_in_the_directory_are_caught_while_streaming(tmp_path: Path) -> None:
    """Directory says 10 bytes, the stream holds 4 MiB: stopped, nothing kept.

    zipfile never hands out more than the declared size and then fails the
    CRC, so this surfaces as a damaged archive; the extractor's own count of
    bytes written is a second line behind it.
    """
    z = _zip(tmp_path / "a.zip", {"big": bytes(4 << 20)})
    with zipfile.ZipFile(z) as zf:
        info = zf.getinfo("big")
        real_size = info.file_size
    raw = bytearray(z.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    assert int.from_bytes(raw[cd + 24 : cd + 28], "little") == real_size
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    raw[30 - 8 : 30 - 4] = (10).to_bytes(4, "little")  # local header's size as well
    z.write_bytes(bytes(raw))
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "corrupt_archive"


def test_empty_archive(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", {})
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "empty_archive"


def test_not_really_a_zip(tmp_path: Path) -> None:
    z = tmp_path / "a.zip"
    z.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    err = _rejected_extract(z, tmp_path / "out")
    assert err.code == "corrupt_archive"


def test_archive_without_a_slide_is_rejected_and_cleaned(tmp_path: Path) -> None:
    z = _zip(tmp_path / "up.zip", {"notes.txt": b"hello", "__MACOSX/._x": b"\x00\x05\x16\x07"})
    with pytest.raises(SlideRejected) as info:
        inspect_slide(z, extract_to=tmp_path / "x")
    assert info.value.code == "empty_archive"
    assert list((tmp_path / "x").iterdir()) == []


def test_find_openable_mirax_and_vms(tmp_path: Path) -> None:
    mrxs = tmp_path / "m"
    (mrxs / "CASE1").mkdir(parents=True)
    (mrxs / "CASE1" / "Slidedat.ini").write_text("[GENERAL]\nSLIDE_VERSION = 01.03\nSLIDE_ID = x\n")
    (mrxs / "CASE1" / "Data0000.dat").write_bytes(b"\xff\xd8\xff" + bytes(100))
    (mrxs / "CASE1" / "Index.dat").write_bytes(b"01.03" + bytes(50))
    (mrxs / "CASE1.mrxs").write_bytes(bytes(10))
    assert find_openable(mrxs) == mrxs / "CASE1.mrxs"

    vms = tmp_path / "v"
    vms.mkdir()
    (vms / "s.vms").write_text("[Virtual Microscope Specimen]\nNoLayers=1\nImageFile=s.jpg\n")
    (vms / "s.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    assert find_openable(vms) == vms / "s.vms"


def test_find_openable_refuses_two_slides(tmp_path: Path) -> None:
    (tmp_path / "a.svs").write_bytes(b"II*\x00" + bytes(20))
    (tmp_path / "b.svs").write_bytes(b"II*\x00" + bytes(20))
    with pytest.raises(SlideRejected) as info:
        find_openable(tmp_path)
    assert info.value.code == "ambiguous_archive"
