"""Decoded source data handed from one reader to another in the same process, once.

A fluorescence image is tiled as its colour composite and as one grey pyramid per channel. The
composite reads and windows every channel of a block; tiled one after the other, each channel
pyramid decoded its channel again (16-bit deflate, then windowing: two thirds of a channel
pyramid's work). When the tiling pipeline renders the channel pyramids' blocks right after the
composite's (``build_pyramid(..., companions=...)``), it turns sharing on for the process: the
composite's reader leaves each windowed channel here, and the channel's own reader takes it.

Off by default, so nothing is kept when no one will take it. Bounded in bytes (oldest first out),
and an entry is removed when taken: each is read exactly once more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

_lock = threading.Lock()
_entries: "OrderedDict[Hashable, np.ndarray]" = OrderedDict()
_limit = 0
_bytes = 0


def enable(max_bytes: int) -> None:
    """Keep up to ``max_bytes`` of shared reads in this process (0 turns sharing off and empties it)."""
    global _limit, _bytes
    with _lock:
        _limit = max_bytes
        if not max_bytes:
            _entries.clear()
            _bytes = 0


def enabled() -> bool:
    return _limit > 0


def put(key: Hashable, value: np.ndarray) -> None:
    """Offer ``value`` (never modified afterwards by the caller) to a later :func:`take`."""
    global _bytes
    with _lock:
        if not _limit or value.nbytes > _limit:
            return
        old = _entries.pop(key, None)
        if old is not None:
            _bytes -= old.nbytes
        _entries[key] = value
        _bytes += value.nbytes
        while _bytes > _limit:
            _, dropped = _entries.popitem(last=False)
            _bytes -= dropped.nbytes


def take(key: Hashable) -> np.ndarray | None:
    """The value put under ``key``, removed; None if there is none (read it yourself)."""
    global _bytes
    with _lock:
        value = _entries.pop(key, None)
        if value is not None:
            _bytes -= value.nbytes
        return value
