"""Tile packs: many JPEG tiles in one object, read back with one ranged GET each.

The object store takes ~470 PUT/s, so one object per tile (25k tiles for a
40k x 30k slide) would spend ~55 s on PUTs alone. A pack holds every tile of
one level-0 block of 16 x 16 tiles plus the tiles of the four halvings above it
(341 tiles), or all coarse levels. Layout::

    [JPEG][JPEG]...[index: JSON list of [level, col, row, offset, length]][u64 index length][b"DZPACK01"]

A blank tile has offset -1: the reader serves the pyramid's shared blank tile of
the right size. The manifest records each pack's size and index location, so a
reader needs one ranged GET for the index (cached) and one per tile.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Iterable

from storage.base import ObjectStore

MAGIC = b"DZPACK01"
_FOOTER = struct.Struct("<Q8s")


@dataclass(frozen=True)
class PackInfo:
    key: str
    size: int
    index_offset: int
    index_length: int
    tiles: int = 0
    blank: int = 0

    def to_json(self) -> dict:
        return {"key": self.key, "size": self.size, "index_offset": self.index_offset,
                "index_length": self.index_length, "tiles": self.tiles, "blank": self.blank}


def build_pack(key: str, entries: Iterable[tuple[int, int, int, bytes | None]]) -> tuple[bytes, PackInfo]:
    body = bytearray()
    index = []
    blank = 0
    for level, col, row, data in entries:
        if data is None:
            index.append([level, col, row, -1, 0])
            blank += 1
        else:
            index.append([level, col, row, len(body), len(data)])
            body += data
    raw_index = json.dumps(index, separators=(",", ":")).encode()
    offset = len(body)
    body += raw_index
    body += _FOOTER.pack(len(raw_index), MAGIC)
    return bytes(body), PackInfo(key, len(body), offset, len(raw_index), len(index), blank)


def parse_index(raw: bytes) -> dict[tuple[int, int, int], tuple[int, int]]:
    return {(lv, c, r): (off, ln) for lv, c, r, off, ln in json.loads(raw)}


def read_pack_info(store: ObjectStore, key: str, size: int) -> PackInfo | None:
    """Recover a finished pack's index location from its footer (used when resuming)."""
    if size < _FOOTER.size:
        return None
    length, magic = _FOOTER.unpack(store.get_range(key, size - _FOOTER.size, _FOOTER.size))
    if magic != MAGIC or length > size - _FOOTER.size:
        return None
    offset = size - _FOOTER.size - length
    entries = json.loads(store.get_range(key, offset, length))
    blank = sum(1 for e in entries if e[3] < 0)
    return PackInfo(key, size, offset, length, len(entries), blank)
