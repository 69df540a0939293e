"""The sandboxed child that opens untrusted files with native decoders.

Run as ``python -m pathology_hub.slides.probe COMMAND PATH [options]``; it
prints exactly one JSON object on its real stdout. OpenSlide, libtiff,
OpenJPEG and Pillow's codecs are C code fed with attacker-controlled bytes, so
the web process never calls them directly: a crash, hang or memory blow-up
here only costs this child (see :mod:`.sandbox`).

Commands:
  describe    open, read pixels, and return a SlideDescription with quality
  thumbnail   write ``thumbnail.jpg`` (bounded size) into ``--out``
  associated  write label/macro/thumbnail PNGs into ``--out``
  ingest      all three in one child: the description, ``thumbnail.jpg`` and the associated PNGs
              (what a worker needs for an upload; one interpreter start and one slide read, not three)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from .errors import (
    CORRUPT_IMAGE,
    NOT_AN_IMAGE,
    PROBE_OUT_OF_MEMORY,
    TRUNCATED_FILE,
    UNSUPPORTED_DICOM,
    UNSUPPORTED_FORMAT,
    SlideRejected,
)
from .identify import PHOTO_CANDIDATES, Magic, sniff

#: Environment variable that makes the child misbehave on purpose, so tests
#: can prove the parent survives a crash or hang. Values: abort, segfault,
#: sleep, memory.
TEST_HOOK_ENV = "PATHOLOGY_HUB_PROBE_TEST_HOOK"

#: Size of the thumbnail used for the quality check.
QUALITY_THUMBNAIL = (512, 512)
#: Side of the level-0 (and per-level) regions read to prove the pixels decode.
PROBE_REGION = 256


def _sanitise(message: str, path: str) -> str:
    """Library error text without file paths (they may contain patient names)."""
    message = message.replace(path, "").replace(os.path.basename(path), "")
    message = re.sub(r"(/[^\s:'\"]+)+", "", message)
    # "Invalid TIFF: <path>" becomes "Invalid TIFF", not "Invalid TIFF: the file"
    message = re.sub(r"\s*:\s*(?=$|[,;)])", "", message.strip())
    message = re.sub(r"\(\s*\)|''|\"\"", "", message)
    message = re.sub(r"\s+:", ":", message)
    # OpenSlide's "Reading <path>: <reason>" would leave a bare "Reading:" in front of the reason
    message = re.sub(r"^\s*(Reading|Opening)\s*:\s*", "", message)
    return re.sub(r"\s{2,}", " ", message).strip(" :")[:300]


def _apply_memory_limit(limit: int) -> None:
    if limit > 0:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _run_test_hook() -> None:
    hook = os.environ.get(TEST_HOOK_ENV)
    if not hook:
        return
    if hook == "abort":
        os.abort()
    elif hook == "segfault":
        import ctypes

        ctypes.string_at(0)  # reads address 0: SIGSEGV inside native code
    elif hook == "sleep":
        time.sleep(3600)
    elif hook == "memory":
        _hog = bytearray(1 << 40)  # noqa: F841 - exceeds any RLIMIT_AS


# --------------------------------------------------------------------------
# truncation check


def tiff_truncation(path: str) -> tuple[int, int] | None:
    """(needed, actual) byte sizes when a TIFF's image data runs past its end.

    tifffile parses only the directories, so this is cheap even for large
    pyramids, and it names the real problem (an interrupted upload) where a
    decoder would only report a confusing read error.
    """
    import tifffile

    size = os.path.getsize(path)
    first_ifd = _first_ifd_offset(path)
    if first_ifd is not None and first_ifd >= size:
        # Aperio and others write the directory after the pixel data, so a
        # cut file often loses the directory itself.
        return first_ifd + 2, size  # at least the directory's entry count
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tif:
                needed = 0
                for page in tif.pages:
                    offsets = getattr(page, "dataoffsets", ()) or ()
                    counts = getattr(page, "databytecounts", ()) or ()
                    for off, cnt in zip(offsets, counts):
                        if off and cnt:
                            needed = max(needed, int(off) + int(cnt))
    except Exception:
        return None  # not parseable as TIFF at all: reported by the decoders
    return (needed, size) if needed > size else None


def _first_ifd_offset(path: str) -> int | None:
    with open(path, "rb") as fh:
        head = fh.read(16)
    order = "<" if head[:2] == b"II" else ">"
    try:
        version = struct.unpack(order + "H", head[2:4])[0]
        if version == 42:
            return struct.unpack(order + "I", head[4:8])[0]
        if version == 43:
            return struct.unpack(order + "Q", head[8:16])[0]
    except struct.error:
        return None
    return None


def reject_if_truncated(path: str, magic: Magic) -> None:
    if magic is not Magic.TIFF:
        return
    truncated = tiff_truncation(path)
    if truncated is None:
        return
    needed, size = truncated
    if size <= 16:  # the classic (8-byte) or BigTIFF (16-byte) header and nothing after it
        raise SlideRejected(
            TRUNCATED_FILE,
            f"The file contains only a TIFF header ({size} bytes) and no image: the upload or copy "
            "was interrupted. Please upload the original file again.",
            {"size": size},
        )
    raise SlideRejected(
        TRUNCATED_FILE,
        f"The file is incomplete: it is {size:,} bytes long, but its image data needs at least "
        f"{needed:,} bytes. The upload or copy was probably interrupted; please upload the original "
        "file again.",
        {"size": size, "needed": needed},
    )


#: The old private name.
_reject_if_truncated = reject_if_truncated


# --------------------------------------------------------------------------
# whole-slide images


def _read_sample_regions(slide: Any) -> None:
    """Decode a few regions on every level, including the last row and column.

    Opening only parses headers; damaged or missing tile data shows up when
    pixels are decoded, and truncation hits the end of the file first.
    """
    for level, ((w, h), ds) in enumerate(zip(slide.level_dimensions, slide.level_downsamples)):
        sw, sh = min(PROBE_REGION, w), min(PROBE_REGION, h)
        spots = {(0, 0), (w - sw, h - sh), ((w - sw) // 2, (h - sh) // 2), (w - sw, 0), (0, h - sh)}
        for x, y in sorted(spots):
            slide.read_region((int(x * ds), int(y * ds)), level, (sw, sh))


def _describe_wsi(reader: Any, facts: Any = None, thumb_size: tuple[int, int] = QUALITY_THUMBNAIL) -> tuple[Any, Any]:
    """Description, a thumbnail within ``thumb_size``, and proof that every level and associated image decodes."""
    description = reader.describe(facts)
    thumbnail = reader.get_thumbnail(thumb_size).convert("RGB")
    _read_sample_regions(reader)
    for name in description.associated_images:
        reader.associated_images[name].load()
    return description, thumbnail


# --------------------------------------------------------------------------
# camera photos


def _describe_photo(path: str, max_pixels: int, thumb_size: tuple[int, int] = QUALITY_THUMBNAIL) -> tuple[Any, Any]:
    from .readers.photo import PhotoReader

    with PhotoReader(path, max_pixels=max_pixels) as reader:
        description = reader.describe()
        thumbnail = reader.get_thumbnail(thumb_size)
    return description, thumbnail


# --------------------------------------------------------------------------
# dispatch


def _open_any(path: str, max_pixels: int, thumb_size: tuple[int, int] = QUALITY_THUMBNAIL) -> tuple[Any, Any]:
    """Try each whole-slide reader that claims the file, then Pillow; turn failures into a specific rejection.

    Returns the description and a thumbnail within ``thumb_size``."""
    from . import readers

    magic = sniff(path)
    facts = readers.preflight(path, magic)  # truncation and unshowable sample layouts, before any decoder

    fmt: str | None = None
    wsi_error: str | None = None
    for cls, detected in readers.candidates(path, magic):
        try:
            with cls(path, detected) as reader:
                return _describe_wsi(reader, facts, thumb_size)
        except cls.errors as exc:
            if wsi_error is None:  # the first (most specific) reader's reason is the one to report
                fmt, wsi_error = detected, _sanitise(str(exc), path) or type(exc).__name__

    photo_error: str | None = None
    if magic in PHOTO_CANDIDATES:
        try:
            return _describe_photo(path, max_pixels, thumb_size)
        except SlideRejected:
            raise
        except Exception as exc:  # Pillow raises OSError/SyntaxError/ValueError alike
            photo_error = _sanitise(str(exc), path) or type(exc).__name__

    if wsi_error is not None:
        label = readers.FORMAT_LABELS.get(fmt or "", fmt)
        if fmt == "dicom" or magic is Magic.DICOM:
            raise SlideRejected(
                UNSUPPORTED_DICOM,
                f"The file is a DICOM whole-slide image of a variant neither OpenSlide nor wsidicom reads "
                f"(the reader reports: {wsi_error}). The file is not necessarily damaged. Please export "
                "the slide from the scanner software as SVS or TIFF, or as standard DICOM WSI "
                "(VL Whole Slide Microscopy Image with ImageType), and upload it again.",
                {"detail": wsi_error},
            )
        if "unsupported" in wsi_error.lower():
            raise SlideRejected(
                UNSUPPORTED_FORMAT,
                f"The file looks like {label}, but OpenSlide cannot read this variant ({wsi_error}), "
                "and it is not a plain photo the image reader can open either. "
                "Please export the slide from the scanner software as SVS or TIFF.",
                {"format": label, "detail": wsi_error},
            )
        raise SlideRejected(
            CORRUPT_IMAGE,
            f"The file is recognised as {label}, but its image data is damaged "
            f"and cannot be decoded ({wsi_error}). Please re-export or rescan the slide.",
            {"format": label, "detail": wsi_error},
        )
    if photo_error is not None:
        if "truncated" in photo_error.lower():
            raise SlideRejected(
                TRUNCATED_FILE,
                f"The {magic.value.upper()} image is incomplete (its data ends early); "
                "the upload was probably interrupted. Please upload it again.",
            )
        raise SlideRejected(
            CORRUPT_IMAGE,
            f"The file starts like a {magic.value.upper()} image but its contents are damaged "
            f"or not valid image data ({photo_error}). Please copy or export the image again "
            "and upload the new file.",
        )
    if magic is Magic.DICOM:
        raise SlideRejected(
            UNSUPPORTED_FORMAT,
            "The DICOM file is not a whole-slide image OpenSlide can read (it may be a "
            "radiology image, or a single file of a series uploaded without the others). Upload all "
            "files of a DICOM series together as one .zip archive, or export the slide as SVS or TIFF.",
        )
    if magic is Magic.SQLITE:
        raise SlideRejected(UNSUPPORTED_FORMAT, "The file is a database, but not a slide format OpenSlide can read. "
                            "Please export the slide from the scanner software as SVS or TIFF.")
    raise SlideRejected(NOT_AN_IMAGE, "The file's contents are not a recognised slide or image format. Please "
                        "upload the scanner's original file (for example SVS, NDPI or TIFF) or a JPEG/PNG photograph.")


def command_describe(path: str, max_pixels: int, out: Path | None) -> dict[str, Any]:
    from .quality import assess_quality

    description, thumbnail = _open_any(path, max_pixels)
    quality = assess_quality(thumbnail, description)
    if out is not None:
        thumbnail.save(out / "quality-thumbnail.png")
    return description.with_changes(quality=quality).to_dict()


def command_ingest(path: str, max_pixels: int, out: Path, max_size: tuple[int, int]) -> dict[str, Any]:
    """``describe`` + ``thumbnail`` + ``associated`` in one child.

    The thumbnail is read once, at ``max_size``, and the quality check looks at it scaled down to
    the size ``describe`` uses, so a single-level slide is decoded once instead of twice.
    """
    from PIL import Image

    from .quality import assess_quality

    description, thumbnail = _open_any(path, max_pixels, max_size)
    small = thumbnail.copy()
    small.thumbnail(QUALITY_THUMBNAIL, Image.LANCZOS)
    described = description.with_changes(quality=assess_quality(small, description)).to_dict()
    thumbnail.save(out / "thumbnail.jpg", "JPEG", quality=90)
    images = command_associated(path, out)["images"] if description.kind != "photo" else {}
    return {"description": described, "thumbnail": "thumbnail.jpg", "images": images}


def _open_wsi(path: str) -> Any:
    """The whole-slide reader that opens an accepted file, or None for a photo."""
    from . import readers

    for cls, detected in readers.candidates(path, sniff(path)):
        try:
            return cls(path, detected)
        except cls.errors:
            continue
    return None


def command_thumbnail(path: str, max_pixels: int, out: Path, max_size: tuple[int, int]) -> dict[str, Any]:
    from .readers.photo import photo_thumbnail

    reader = _open_wsi(path)
    if reader is None:
        image = photo_thumbnail(path, max_pixels, max_size)
    else:
        with reader:
            image = reader.get_thumbnail(max_size).convert("RGB")
    target = out / "thumbnail.jpg"
    image.save(target, "JPEG", quality=90)
    return {"file": target.name, "width": image.width, "height": image.height}


def command_associated(path: str, out: Path) -> dict[str, Any]:
    reader = _open_wsi(path)
    if reader is None:
        return {"images": {}}  # photos have no label or macro
    images: dict[str, str] = {}
    with reader:
        associated = reader.associated_images
        for index, name in enumerate(sorted(associated)):
            filename = f"associated-{index}.png"
            associated[name].save(out / filename, "PNG")
            images[name] = filename
    return {"images": images}


_OUT_OF_MEMORY = {
    "ok": False,
    "code": PROBE_OUT_OF_MEMORY,
    "message": "Opening the file needed more memory than the safety limit allows; it may be corrupt or crafted.",
}



def _is_out_of_memory(exc: BaseException) -> bool:
    """Native allocation failures under RLIMIT_AS surface as OSError/ImportError."""
    text = str(exc)
    return getattr(exc, "errno", None) == 12 or "map segment" in text or "Cannot allocate memory" in text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pathology_hub.slides.probe")
    parser.add_argument("command", choices=("describe", "thumbnail", "associated", "ingest"))
    parser.add_argument("path")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--memory-limit", type=int, default=0)
    parser.add_argument("--max-photo-pixels", type=int, default=200_000_000)
    parser.add_argument("--max-size", type=int, nargs=2, default=(1024, 1024))
    args = parser.parse_args(argv)

    # Native libraries sometimes print to stdout; keep the real stdout for
    # our single JSON line and send everything else to stderr.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    _apply_memory_limit(args.memory_limit)
    try:
        _run_test_hook()
        if args.command == "describe":
            payload = {"ok": True, "result": command_describe(args.path, args.max_photo_pixels, args.out)}
        elif args.command == "thumbnail":
            payload = {"ok": True, "result": command_thumbnail(args.path, args.max_photo_pixels, args.out, tuple(args.max_size))}
        elif args.command == "ingest":
            payload = {"ok": True, "result": command_ingest(args.path, args.max_photo_pixels, args.out, tuple(args.max_size))}
        else:
            payload = {"ok": True, "result": command_associated(args.path, args.out)}
    except SlideRejected as exc:
        payload = {"ok": False, **exc.to_dict()}
    except MemoryError:
        payload = _OUT_OF_MEMORY
    except Exception as exc:  # a decoder failing on a later read of an accepted file
        traceback.print_exc()  # to stderr, which the parent logs
        payload = _OUT_OF_MEMORY if _is_out_of_memory(exc) else {
            "ok": False,
            "code": CORRUPT_IMAGE,
            "message": f"The file could not be read ({_sanitise(str(exc), args.path) or type(exc).__name__}).",
        }
    with os.fdopen(result_fd, "w") as fh:
        fh.write(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
