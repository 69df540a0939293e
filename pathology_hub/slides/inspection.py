"""The ingest entry points the web app and workers call.

Everything that parses pixel data happens in the sandboxed probe; this module
only sniffs magic bytes, unpacks archives safely and translates the probe's
answer into a :class:`SlideDescription` or a :class:`SlideRejected`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from . import archive
from .errors import EMPTY_FILE, NOT_AN_IMAGE, UNSUPPORTED_FORMAT, VENDOR_FORMAT, SlideRejected
from .identify import REFUSED_VENDORS, Magic, sniff
from .metadata import SlideDescription
from .sandbox import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT, run_probe

DEFAULT_MAX_PHOTO_PIXELS = 200_000_000
#: Scanner formats recognised by signature with no reader (KFB has one: slides.readers.kfb).
VENDOR_FORMATS = REFUSED_VENDORS
#: Name of the folder, inside ``extract_to``, that holds an unpacked archive.
EXTRACTED_NAME = "slide"


def _reject_without_probe(path: Path, magic: Magic) -> None:
    """Refuse what is obviously not a slide, with a message naming the problem."""
    suffix = path.suffix.lower()
    if magic is Magic.EMPTY:
        raise SlideRejected(EMPTY_FILE, "The file is empty (0 bytes); the upload may have failed.")
    if magic is Magic.TEXT:
        renamed = f" renamed {suffix}" if suffix else ""
        raise SlideRejected(NOT_AN_IMAGE, f"The file is a text file{renamed}; it is not an image.")
    if magic in VENDOR_FORMATS:
        name, maker = VENDOR_FORMATS[magic]
        raise SlideRejected(
            VENDOR_FORMAT,
            f"The file is in {name} format (recognised by its signature). This platform cannot read "
            f"that scanner format yet. Please export the slide as SVS or TIFF with the {maker} "
            "scanner software and upload the exported file.",
            {"format": name, "vendor": maker},
        )
    if magic is Magic.MRXS_INDEX:
        raise SlideRejected(
            UNSUPPORTED_FORMAT,
            "This is only the index of a 3DHISTECH MIRAX slide. Upload the .mrxs file together "
            "with its folder of the same name as one .zip archive.",
        )
    if magic is Magic.VMS_INDEX:
        raise SlideRejected(
            UNSUPPORTED_FORMAT,
            "This is only the index of a Hamamatsu VMS slide. Upload the .vms file together "
            "with its image files as one .zip archive.",
        )


@dataclass(frozen=True)
class Inspection:
    """What ingest needs from an upload: its description, a JPEG thumbnail, the associated images (PNG)."""

    description: SlideDescription
    thumbnail: bytes
    associated: dict[str, bytes]


def inspect_slide(
    path: str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
    extract_to: str | Path | None = None,
    max_archive_bytes: int = archive.DEFAULT_MAX_TOTAL_BYTES,
    max_archive_files: int = archive.DEFAULT_MAX_FILES,
    max_archive_ratio: float = archive.DEFAULT_MAX_RATIO,
) -> SlideDescription:
    """Identify, validate and describe one uploaded file.

    A .zip (identified by content) is unpacked into ``extract_to/slide``
    (default: a folder named after the upload plus ``.d``, next to it); the
    returned ``openable_path`` is then relative to ``extract_to``. On
    rejection the unpacked files are removed again.

    Raises SlideRejected with a stable ``code`` and an English ``message``.
    """
    def describe(openable: Path, probe_kw: dict) -> SlideDescription:
        return SlideDescription.from_dict(run_probe("describe", openable, **probe_kw))

    return _probe_upload(path, describe, timeout=timeout, memory_limit=memory_limit,
                         max_photo_pixels=max_photo_pixels, extract_to=extract_to,
                         archive_limits=(max_archive_bytes, max_archive_files, max_archive_ratio))


def inspect_upload(
    path: str | Path,
    *,
    thumbnail_size: tuple[int, int] = (1024, 1024),
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
    extract_to: str | Path | None = None,
) -> Inspection:
    """:func:`inspect_slide`, :func:`make_thumbnail` and :func:`extract_associated_images` at once.

    One sandboxed child does all three: starting the interpreter and opening the slide were most of
    an ingest's fixed cost when each was its own child (about 2.5 s for a small slide, now ~1 s).
    """
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        def ingest(openable: Path, probe_kw: dict) -> Inspection:
            size = ["--max-size", str(int(thumbnail_size[0])), str(int(thumbnail_size[1]))]
            probe_kw = {**probe_kw, "extra_args": probe_kw["extra_args"] + size}
            result = run_probe("ingest", openable, out_dir=tmp, **probe_kw)
            return Inspection(SlideDescription.from_dict(result["description"]),
                              (Path(tmp) / result["thumbnail"]).read_bytes(),
                              {name: (Path(tmp) / filename).read_bytes()
                               for name, filename in result["images"].items()})

        inspection = _probe_upload(path, ingest, timeout=timeout, memory_limit=memory_limit,
                                   max_photo_pixels=max_photo_pixels, extract_to=extract_to)
    return inspection


_T = TypeVar("_T", SlideDescription, Inspection)


def _probe_upload(path: str | Path, probe: Callable[[Path, dict], _T], *, timeout: float, memory_limit: int,
                  max_photo_pixels: int, extract_to: str | Path | None,
                  archive_limits: tuple[int, int, float] | None = None) -> _T:
    """Sniff, refuse the obvious, unpack a .zip safely, then run ``probe`` on the file a reader opens."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    magic = sniff(path)
    _reject_without_probe(path, magic)
    probe_kw = dict(timeout=timeout, memory_limit=memory_limit,
                    extra_args=["--max-photo-pixels", str(int(max_photo_pixels))])

    if magic is not Magic.ZIP:
        return probe(path, probe_kw)

    max_bytes, max_files, max_ratio = archive_limits or (archive.DEFAULT_MAX_TOTAL_BYTES, archive.DEFAULT_MAX_FILES,
                                                         archive.DEFAULT_MAX_RATIO)
    base = Path(extract_to) if extract_to is not None else path.with_name(path.name + ".d")
    root = archive.safe_extract_zip(path, base, max_total_bytes=max_bytes, max_files=max_files,
                                    max_ratio=max_ratio, name=EXTRACTED_NAME)
    try:
        openable = archive.find_openable(root)
        result = probe(openable, probe_kw)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    relative = openable.relative_to(base).as_posix()
    if isinstance(result, Inspection):
        return Inspection(result.description.with_changes(openable_path=relative), result.thumbnail,
                          result.associated)
    return result.with_changes(openable_path=relative)


def extract_associated_images(
    path: str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> dict[str, bytes]:
    """Label, macro and thumbnail images of a slide, as PNG bytes by name.

    ``path`` is the file OpenSlide opens (for archives: ``extract_to /
    description.openable_path``). Photos have none and give ``{}``.
    """
    with tempfile.TemporaryDirectory(prefix="associated-") as tmp:
        result = run_probe("associated", path, timeout=timeout, memory_limit=memory_limit, out_dir=tmp)
        return {name: (Path(tmp) / filename).read_bytes() for name, filename in result["images"].items()}


def make_thumbnail(
    path: str | Path,
    max_size: tuple[int, int] = (1024, 1024),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    max_photo_pixels: int = DEFAULT_MAX_PHOTO_PIXELS,
) -> bytes:
    """A JPEG thumbnail no larger than ``max_size``, rendered in the sandbox."""
    with tempfile.TemporaryDirectory(prefix="thumbnail-") as tmp:
        result = run_probe(
            "thumbnail",
            path,
            timeout=timeout,
            memory_limit=memory_limit,
            out_dir=tmp,
            extra_args=["--max-size", str(int(max_size[0])), str(int(max_size[1])), "--max-photo-pixels", str(int(max_photo_pixels))],
        )
        return (Path(tmp) / result["file"]).read_bytes()
