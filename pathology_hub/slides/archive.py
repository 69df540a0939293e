"""Unpack multi-file slide uploads (MRXS, VMS, DICOM series) from a .zip safely.

An uploaded archive is attacker-controlled: entry names can point outside the
target (``../``, absolute paths), entries can be symlinks, and a few kilobytes
can inflate to terabytes. Everything is checked from the central directory
before a byte is written, and again while streaming, because the declared
sizes can lie. Extraction goes into a hidden temporary directory that is only
renamed into place once everything succeeded, so a failure never leaves a
half-extracted slide behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import (
    AMBIGUOUS_ARCHIVE,
    ARCHIVE_TOO_LARGE,
    CORRUPT_ARCHIVE,
    EMPTY_ARCHIVE,
    UNSAFE_ARCHIVE,
    SlideRejected,
)
from .identify import Magic, sniff

DEFAULT_MAX_TOTAL_BYTES = 16 << 30  # the largest MRXS/DICOM uploads seen are a few GiB
DEFAULT_MAX_FILES = 10_000  # MRXS has tens of .dat files; DICOM series hundreds at most
DEFAULT_MAX_RATIO = 100  # slide data is already JPEG/JP2K-compressed; zips barely shrink it
_CHUNK = 1 << 20
#: Entries that archivers add and that are never part of a slide.
_JUNK_PREFIXES = ("__MACOSX/",)
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _unsafe(message: str) -> SlideRejected:
    return SlideRejected(UNSAFE_ARCHIVE, message)


def _safe_member_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's relative path, or None for junk; raise when it is unsafe."""
    raw = info.filename
    if "\x00" in raw:
        raise _unsafe("The archive contains an entry with an invalid name.")
    name = raw.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe("The archive contains an entry with an absolute path; it was not unpacked.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _unsafe("The archive contains an entry that points outside the archive ('..'); it was not unpacked.")
    mode = info.external_attr >> 16
    if info.create_system == 3 and mode:  # Unix attributes present
        if stat.S_ISLNK(mode):
            raise _unsafe("The archive contains a symbolic link; links are not allowed in uploads.")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _unsafe("The archive contains a special file (device, pipe or socket).")
    if info.flag_bits & 0x1:
        raise _unsafe("The archive is password-protected; please upload an unencrypted archive.")
    if not parts or name.startswith(_JUNK_PREFIXES) or parts[-1] in _JUNK_NAMES:
        return None
    return PurePosixPath(*parts)


def _check_directory(
    zf: zipfile.ZipFile, archive_size: int, max_total_bytes: int, max_files: int, max_ratio: float
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: set[str] = set()
    total = 0
    compressed = 0
    for info in zf.infolist():
        rel = _safe_member_path(info)
        if rel is None:
            continue
        key = str(rel).casefold()
        if key in seen and not info.is_dir():
            raise _unsafe("The archive contains the same file name twice.")
        seen.add(key)
        if info.is_dir():
            members.append((info, rel))
            continue
        total += info.file_size
        compressed += info.compress_size
        if info.file_size > max_ratio * max(info.compress_size, 1) and info.file_size > _CHUNK:
            raise _unsafe(
                f"The archive entry would expand {info.file_size / max(info.compress_size, 1):,.0f} times "
                f"(limit {max_ratio:g}); this looks like a zip bomb and was not unpacked."
            )
        members.append((info, rel))
    files = sum(1 for info, _ in members if not info.is_dir())
    if files == 0:
        raise SlideRejected(EMPTY_ARCHIVE, "The archive contains no files.")
    if files > max_files:
        raise SlideRejected(ARCHIVE_TOO_LARGE, f"The archive contains {files:,} files; the limit is {max_files:,}.")
    if total > max_total_bytes:
        raise SlideRejected(
            ARCHIVE_TOO_LARGE,
            f"The archive would unpack to {total:,} bytes; the limit is {max_total_bytes:,}.",
        )
    if compressed > archive_size:
        # Entries sharing compressed data ("overlapping" zip bombs) claim more
        # compressed bytes than the archive holds.
        raise _unsafe("The archive's entries overlap each other; this looks like a zip bomb and was not unpacked.")
    return members


def _copy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, max_ratio: float
) -> int:
    """Stream one entry to disk, enforcing the limits on bytes actually written."""
    written = 0
    limit = min(info.file_size, budget)
    with zf.open(info) as src, open(target, "xb") as dst:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                if written > budget:
                    raise SlideRejected(ARCHIVE_TOO_LARGE, "The archive unpacks to more data than the size limit allows.")
                raise _unsafe("An archive entry holds more data than it declares; it was not unpacked.")
            if written > _CHUNK and written > max_ratio * max(info.compress_size, 1):
                raise _unsafe("An archive entry expands far more than allowed; this looks like a zip bomb.")
            dst.write(chunk)
    return written


def safe_extract_zip(
    zip_path: str | Path,
    dest_dir: str | Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_ratio: float = DEFAULT_MAX_RATIO,
    name: str = "slide",
) -> Path:
    """Extract ``zip_path`` into ``dest_dir/name`` and return that directory.

    Raises SlideRejected (``unsafe_archive``, ``archive_too_large``,
    ``empty_archive``, ``corrupt_archive``); on any failure nothing is left in
    ``dest_dir`` except what was there before.
    """
    zip_path = Path(zip_path)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / name
    if final.exists():
        raise FileExistsError(final)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise SlideRejected(CORRUPT_ARCHIVE, "The .zip archive is damaged and cannot be read.") from None

    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        with zf:
            members = _check_directory(zf, zip_path.stat().st_size, max_total_bytes, max_files, max_ratio)
            root = staging.resolve()
            budget = max_total_bytes
            for info, rel in members:
                target = root.joinpath(*rel.parts)
                if not target.resolve().is_relative_to(root):
                    raise _unsafe("The archive contains an entry that points outside the archive.")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                budget -= _copy_member(zf, info, target, budget, max_ratio)
        os.rename(staging, final)
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise SlideRejected(CORRUPT_ARCHIVE, "The .zip archive is damaged and cannot be unpacked.") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


# --------------------------------------------------------------------------
# finding the slide inside


def find_openable(root: str | Path) -> Path:
    """The file OpenSlide should open in an extracted upload, found by content.

    MIRAX keeps an INI index (``Slidedat.ini``) in a folder next to the
    ``.mrxs`` file OpenSlide opens (OpenSlide itself requires that name);
    a VMS index is itself the file to open; OpenSlide 4 opens a DICOM series
    from any one instance, finding the others in its directory. Anything else
    must be a single image file.
    """
    root = Path(root)
    index_files: list[Path] = []
    dicom: list[Path] = []
    images: list[Path] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        magic = sniff(path)
        if magic in (Magic.MRXS_INDEX, Magic.VMS_INDEX):
            index_files.append(path)
        elif magic is Magic.DICOM:
            dicom.append(path)
        elif magic in (Magic.TIFF, Magic.SQLITE, Magic.JPEG, Magic.PNG):
            images.append(path)
    if len(index_files) == 1:
        return _mrxs_for(index_files[0]) if sniff(index_files[0]) is Magic.MRXS_INDEX else index_files[0]
    if len(index_files) > 1:
        raise SlideRejected(AMBIGUOUS_ARCHIVE, "The archive contains several slides; please upload one slide per archive.")
    if dicom:
        directories = {p.parent for p in dicom}
        if len(directories) > 1:
            raise SlideRejected(
                AMBIGUOUS_ARCHIVE,
                "The archive's DICOM files are spread over several folders; put the files of one slide in one folder.",
            )
        return dicom[0]
    if len(images) == 1:
        return images[0]
    if len(images) > 1:
        # MRXS .dat files are not images by magic, so several images means
        # several slides (or photos) in one upload.
        raise SlideRejected(AMBIGUOUS_ARCHIVE, "The archive contains several images; please upload one slide per archive.")
    raise SlideRejected(EMPTY_ARCHIVE, "The archive contains no slide or image file.")


def _mrxs_for(slidedat: Path) -> Path:
    folder = slidedat.parent
    for candidate in sorted(folder.parent.iterdir()):
        if candidate.is_file() and candidate.stem == folder.name and candidate.suffix.lower() == ".mrxs":
            return candidate
    raise SlideRejected(
        EMPTY_ARCHIVE,
        "The archive contains a MIRAX data folder but not the .mrxs file that belongs next to it.",
    )
