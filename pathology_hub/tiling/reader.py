"""Serving tiles from a stored pyramid: one ranged read per tile.

Pack indexes are parsed once and cached (LRU), and each pack is read through a
cached :class:`~storage.base.RangeReader` (an open descriptor on the local
folder; a local copy from the optional :class:`PackCache` for a remote store),
so after warm-up a tile costs one ``pread``. Addresses are validated as plain non-negative ints before
any key is formed; keys come only from the manifest, never from the request.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict

from storage.base import ObjectStore, RangeReader
from storage.errors import ObjectNotFound
from storage.keys import validate_key

from .errors import TileNotFound, TileNotReady
from .geometry import Geometry
from .layout import MANIFEST, PREVIEW_MANIFEST, validate_address
from .pack import parse_index
from .pack_cache import PackCache

_INDEX_CACHE = 256  # packs; ~10 KB each parsed
_OPEN_PACKS = 16  # open readers per pyramid (file descriptors on the local folder)


class PyramidReader:
    """Read access to one pyramid under ``prefix``; safe to share between threads."""

    def __init__(self, store: ObjectStore, prefix: str, pack_cache: PackCache | None = None) -> None:
        self.store = store
        self.pack_cache = pack_cache
        self.prefix = validate_key(prefix.rstrip("/"))
        self._lock = threading.Lock()
        self._indexes: OrderedDict[str, dict] = OrderedDict()
        self._open: OrderedDict[str, RangeReader] = OrderedDict()
        self._blank: bytes | None = None
        self._loaded_at = 0.0
        self._load_manifest()

    def _load_manifest(self) -> None:
        for name in (MANIFEST, PREVIEW_MANIFEST):
            try:
                raw = self.store.get_bytes(f"{self.prefix}/{name}")
            except ObjectNotFound:
                continue
            manifest = json.loads(raw)
            dzi = manifest["dzi"]
            self.manifest: dict = manifest
            self.geometry = Geometry(dzi["width"], dzi["height"], dzi["tile_size"], dzi["overlap"])
            self._loaded_at = time.monotonic()
            return
        raise TileNotFound(f"no pyramid stored under {self.prefix!r}")

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    def refresh(self) -> None:
        """Pick up the final manifest after a preview (cheap: one GET)."""
        with self._lock:
            self._load_manifest()

    def dzi_xml(self) -> str:
        return self.geometry.dzi_xml(self.manifest["dzi"]["format"])

    def _pack_name(self, level: int, col: int, row: int) -> str:
        if level in self.manifest["layout"]["coarse_levels"]:
            return "top"
        bx, by = self.geometry.block_of(level, col, row)
        return f"b{bx}-{by}"

    def _pack_reader(self, name: str, pack: dict) -> RangeReader:
        """The cached reader of one pack; opened on first use (keys are immutable per version)."""
        with self._lock:
            reader = self._open.get(name)
            if reader is not None:
                self._open.move_to_end(name)
                return reader
        if self.pack_cache is not None:
            reader = self.pack_cache.reader(pack["key"], pack["size"])
            if reader is None:  # no local copy yet (being fetched): go to the store, do not keep
                return self.store.open_ranged(pack["key"])
        else:
            reader = self.store.open_ranged(pack["key"])
        with self._lock:
            self._open[name] = reader
            while len(self._open) > _OPEN_PACKS:
                self._open.popitem(last=False)  # closed when no thread holds it any more
        return reader

    def _index(self, name: str, pack: dict) -> dict:
        with self._lock:
            index = self._indexes.get(name)
            if index is not None:
                self._indexes.move_to_end(name)
                return index
        raw = self._pack_reader(name, pack).read(pack["index_offset"], pack["index_length"])
        index = parse_index(raw)
        with self._lock:
            self._indexes[name] = index
            while len(self._indexes) > _INDEX_CACHE:
                self._indexes.popitem(last=False)
        return index

    def _blank_tile(self, w: int, h: int) -> bytes:
        if self._blank is None:
            self._blank = self.store.get_bytes(self.manifest["blank"]["key"])
        off, length = self.manifest["blank"]["tiles"][f"{w}x{h}"]
        return self._blank[off:off + length]

    def tile(self, level: object, col: object, row: object) -> bytes:
        """JPEG bytes of one tile; TileNotFound outside the pyramid, TileNotReady while building."""
        level, col, row = validate_address(level, col, row)
        try:
            _, _, w, h = self.geometry.tile_box(level, col, row)
        except IndexError as exc:
            raise TileNotFound(str(exc)) from None
        name = self._pack_name(level, col, row)
        pack = self.manifest["packs"].get(name)
        if pack is None and not self.complete and time.monotonic() - self._loaded_at > 1.0:
            self.refresh()
            pack = self.manifest["packs"].get(name)
        if pack is None:
            if self.complete:
                raise TileNotFound(f"tile {level}/{col}_{row} has no pack in the manifest")
            raise TileNotReady(f"tile {level}/{col}_{row} is not built yet")
        entry = self._index(name, pack).get((level, col, row))
        if entry is None:
            raise TileNotFound(f"tile {level}/{col}_{row} is missing from its pack index")
        offset, length = entry
        if offset < 0:
            return self._blank_tile(w, h)
        return self._pack_reader(name, pack).read(offset, length)
