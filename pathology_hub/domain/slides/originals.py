"""Local files of originals for the native readers on a worker: OpenSlide needs a path, so remote
originals are downloaded once into the worker's cache (verified against their SHA-256), archives
unpacked and camera photos converted to a tiled TIFF.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pathology_hub.domain.slides.descriptions import description_of
from pathology_hub.domain.slides.keys import SAFE_NAME
from pathology_hub.models import Slide, StoredOriginal
from storage.base import ObjectStore


def cache_dir() -> Path:
    from pathology_hub import runtime
    path = runtime.settings().instance_path / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached_original_path(original: StoredOriginal, filename: str) -> Path:
    return cache_dir() / "originals" / original.sha256 / (SAFE_NAME.sub("_", filename) or "slide")


def local_original_if_present(store: ObjectStore, original: StoredOriginal, filename: str) -> Path | None:
    """The original's local file when this machine already has one, without downloading it.

    Used where fetching a whole original would be out of all proportion (one on-demand tile).
    """
    local = getattr(store, "local_path", None)
    if callable(local):
        path = Path(local(original.storage_key))
        if path.exists():
            return path
    target = _cached_original_path(original, filename)
    if target.exists() and target.stat().st_size == original.size:
        return target
    return None


def local_original(store: ObjectStore, original: StoredOriginal, filename: str) -> Path:
    """A local file of the original for native readers (OpenSlide needs a path).

    The local-folder backend already has one; other backends are downloaded once
    into the worker's cache, verified against the recorded SHA-256.
    """
    present = local_original_if_present(store, original, filename)
    if present is not None:
        return present
    target = _cached_original_path(original, filename)
    target_dir = target.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    import hashlib
    digest = hashlib.sha256()
    with open(tmp, "wb") as fh:
        for chunk in store.open_stream(original.storage_key):
            digest.update(chunk)
            fh.write(chunk)
    if digest.hexdigest() != original.sha256:
        tmp.unlink(missing_ok=True)
        from storage.errors import IntegrityError
        raise IntegrityError(f"original {original.sha256[:12]}… does not match its recorded SHA-256")
    os.replace(tmp, target)
    return target


def openable_path(store: ObjectStore, slide: Slide) -> Path:
    """The path OpenSlide opens: the original, its unpacked archive, or its converted photo."""
    path = local_original(store, slide.original, slide.original_filename)
    desc = description_of(slide)
    if desc.get("kind") == "photo":
        return _photo_as_tiff(path, slide.original.sha256)
    if desc.get("openable_path"):
        base = cache_dir() / "unpacked" / slide.original.sha256
        target = base / desc["openable_path"]
        if not target.exists():
            from pathology_hub.slides import safe_extract_zip
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir(parents=True, exist_ok=True)
            safe_extract_zip(path, base, name="slide")
        return target
    return path


def _photo_as_tiff(path: Path, sha256: str) -> Path:
    """Camera photos become a tiled TIFF that OpenSlide reads as generic-tiff."""
    target = cache_dir() / "photos" / f"{sha256}.tiff"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from pathology_hub.slides.photo import photo_to_tiled_tiff
    photo_to_tiled_tiff(path, target)
    return target
