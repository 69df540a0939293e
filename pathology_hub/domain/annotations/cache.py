"""Serialised annotations kept per process, so listing 10,000 polygons is not re-serialised per request.

Turning a row into its GeoJSON feature costs ~10-70 µs (less when the row's stored
``list_text`` can be spliced); the viewer asks for a slide's annotations in a few
viewport strips at once, so a slide with 10,000 polygons would cost most of a
second of server time on every opening.

Texts are cached by ``(annotation id, version)`` per slide and calibration. Every
change to an annotation bumps its version (deletes included), so a cached text is
never stale and nothing has to be invalidated: after an edit only the edited row is
serialised again, and after a restart each request serialises only the rows it
returns (the four strips of an opening share the work instead of each process
rebuilding the whole slide). Which rows a request returns, and their versions and
authors' names, always come from the database; the author's display name is spliced
per request, so renaming a user never serves a stale name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import orjson

MAX_CACHED_BYTES = 256 << 20  # per process; least recently used slides go first

Key = tuple[int, int]  # (annotation id, version)


@dataclass
class _SlideEntry:
    features: dict[Key, bytes] = field(default_factory=dict)  # UTF-8 feature text without its closing "}}"
    size: int = 0


_entries: "OrderedDict[tuple[int, tuple], _SlideEntry]" = OrderedDict()
_lock = threading.Lock()
_total = 0


def lookup(slide_id: int, frame_key: tuple, keys: Iterable[Key]) -> dict[Key, bytes]:
    """The cached texts among ``keys`` (those not cached are simply absent)."""
    with _lock:
        entry = _entries.get((slide_id, frame_key))
        if entry is None:
            return {}
        _entries.move_to_end((slide_id, frame_key))
        cached = entry.features
        return {k: cached[k] for k in keys if k in cached}


def add(slide_id: int, frame_key: tuple, texts: Mapping[Key, bytes], live: Iterable[Key] | None = None) -> None:
    """Remember ``texts``; with ``live`` (every live key of the slide, from a whole-slide
    list) also forget the texts of older versions and deleted annotations."""
    global _total
    with _lock:
        entry = _entries.setdefault((slide_id, frame_key), _SlideEntry())
        _entries.move_to_end((slide_id, frame_key))
        if live is not None:
            keep = set(live)
            for key in [k for k in entry.features if k not in keep]:
                removed = entry.features.pop(key)
                entry.size -= len(removed)
                _total -= len(removed)
        for key, text in texts.items():
            if key in entry.features:
                continue
            entry.features[key] = text
            entry.size += len(text)
            _total += len(text)
        while _total > MAX_CACHED_BYTES and _entries:
            _, evicted = _entries.popitem(last=False)
            _total -= evicted.size


def collection(features: Iterable[tuple[bytes, str | None]]) -> bytes:
    """A FeatureCollection from open feature texts and their authors' names, joined once."""
    closings: dict[str | None, bytes] = {}
    parts = [b'{"type":"FeatureCollection","features":[']
    for open_feature, author_name in features:
        closing = closings.get(author_name)
        if closing is None:
            closing = closings[author_name] = b',"author_name":%s}}' % orjson.dumps(author_name)
        if len(parts) > 1:
            parts.append(b",")
        parts.append(open_feature)
        parts.append(closing)
    parts.append(b"]}")
    return b"".join(parts)


def cached_bytes() -> int:
    """Bytes of feature text held by this process (tests, diagnostics)."""
    with _lock:
        return _total


def clear() -> None:
    """Forget everything (tests; a new app in the same process, whose database may reuse ids)."""
    global _total
    with _lock:
        _entries.clear()
        _total = 0
