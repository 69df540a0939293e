"""Where a pyramid lives in object storage, and which tile addresses exist as numbers.

The one owner of pyramid key names: the build side (:mod:`.pipeline`) writes under these names,
the read side (:mod:`.reader`, the web tile server, on-demand rendering) finds objects by them,
and slide withdrawal and purging remove them.  Kept free of rendering, OpenSlide and the process
pool, so the read side never has to import the build side just to know a manifest's name.

Layout of one pyramid version (``pyramids/<uid>/v<n>``)::

    manifest.json              final manifest, written last (a reader takes it over the preview)
    manifest.preview.json      first-view manifest while the fine levels are still being built
    blank.jpgs                 the blank tiles, concatenated (offsets in the manifest)
    packs/b<bx>-<by>.pack      one block of fine-level tiles
    packs/top.pack             the coarse levels
    thumbnail.jpg, associated/<name>.png
    ondemand/<level>/<col>_<row>.jpeg   tiles rendered ahead of the pipeline

Next to the versions, ``pyramids/<uid>/withdrawn`` tells every reader the slide was withdrawn.
"""

from __future__ import annotations

import operator

from .errors import TileNotFound

#: Root of every slide's pyramids in the object store.
PYRAMIDS_ROOT = "pyramids"
MANIFEST = "manifest.json"
PREVIEW_MANIFEST = "manifest.preview.json"
#: Value of the manifest's ``format`` field.
FORMAT = "pathology-hub-deepzoom/1"
BLANK = "blank.jpgs"


def slide_pyramids_prefix(uid: str) -> str:
    """Prefix of all pyramid versions of one slide (with the trailing slash, for ``delete_prefix``)."""
    return f"{PYRAMIDS_ROOT}/{uid}/"


def pyramid_prefix(uid: str, version: int) -> str:
    """Prefix of one pyramid version of a slide: ``pyramids/<uid>/v<version>``."""
    return f"{PYRAMIDS_ROOT}/{uid}/v{version}"


def uid_of_prefix(prefix: str) -> str:
    """The slide uid of a pyramid prefix made by :func:`pyramid_prefix`."""
    return prefix.split("/")[1]


def withdrawn_marker(uid: str) -> str:
    """The object whose presence tells tile readers that the slide was withdrawn."""
    return f"{PYRAMIDS_ROOT}/{uid}/withdrawn"


def manifest_key(prefix: str, *, preview: bool = False) -> str:
    return f"{prefix}/{PREVIEW_MANIFEST if preview else MANIFEST}"


def blank_key(prefix: str) -> str:
    return f"{prefix}/{BLANK}"


def block_key(prefix: str, bx: int, by: int) -> str:
    return f"{prefix}/packs/b{bx}-{by}.pack"


def top_key(prefix: str) -> str:
    return f"{prefix}/packs/top.pack"


def thumbnail_key(prefix: str) -> str:
    return f"{prefix}/thumbnail.jpg"


def associated_key(prefix: str, safe_name: str) -> str:
    return f"{prefix}/associated/{safe_name}.png"


def ondemand_key(prefix: str, level: int, col: int, row: int) -> str:
    """Where a tile rendered ahead of the pipeline is kept (immutable per pyramid version)."""
    return f"{prefix}/ondemand/{level}/{col}_{row}.jpeg"


def validate_address(level: object, col: object, row: object) -> tuple[int, int, int]:
    """Accept ints (or int-like, never bool/str/float); raise TileNotFound otherwise."""
    out = []
    for name, value in (("level", level), ("col", col), ("row", row)):
        if isinstance(value, bool):
            raise TileNotFound(f"{name} must be an integer")
        try:
            number = operator.index(value)
        except TypeError:
            raise TileNotFound(f"{name} must be an integer, not {type(value).__name__}") from None
        if number < 0:
            raise TileNotFound(f"{name} must not be negative")
        out.append(number)
    return out[0], out[1], out[2]
