"""Serialised annotations kept per process, so listing 10,000 polygons is not re-serialised per request.

Turning a row into its GeoJSON feature (properties, ISO dates, µm measurements,
JSON encoding) costs ~100 µs; the viewer asks for a slide's annotations in a few
viewport strips at once, so a slide with 10,000 polygons cost over a second of
server time on every opening. The feature text of every live annotation of a
slide is therefore built once and kept, keyed by the slide's *revision*: one
aggregate over the slide's rows (count, sum of versions, highest id, deleted
count) that every create, edit (versions only grow), delete and import changes.
Each request still runs its own query (filters, bounding box, authorisation
done by the caller) but only fetches ids and author names, and splices the
cached texts. The author's display name is spliced per request, so renaming a
user never serves a stale name. Any process that writes or reads sees the
revision from the database, so several workers or machines stay exact.
"""

from __future__ import annotations

import orjson
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Annotation

MAX_CACHED_BYTES = 256 << 20  # per process; least recently used slides go first


@dataclass
class _SlideEntry:
    revision: tuple
    features: dict[int, bytes]  # annotation id -> UTF-8 feature text without its closing "}}"
    size: int


_entries: "OrderedDict[int, _SlideEntry]" = OrderedDict()
_lock = threading.Lock()
_build_locks: dict[int, threading.Lock] = {}
_total = 0


def revision(session: Session, slide_id: int, frame_key: tuple) -> tuple:
    """What the cached texts depend on: the slide's rows and its calibration (µm per pixel)."""
    row = session.execute(
        select(func.count(Annotation.id), func.coalesce(func.sum(Annotation.version), 0),
               func.coalesce(func.max(Annotation.id), 0), func.count(Annotation.deleted_at),
               func.max(Annotation.created_at), func.max(Annotation.updated_at))
        .where(Annotation.slide_id == slide_id)).one()
    return (*tuple(row), frame_key)


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


def features_for(session: Session, slide_id: int, frame_key: tuple,
                 build: Callable[[], Iterable[tuple[int, bytes]]]) -> dict[int, bytes]:
    """The slide's cached open feature texts, rebuilt by ``build()`` when the revision moved."""
    current = revision(session, slide_id, frame_key)
    with _lock:
        entry = _entries.get(slide_id)
        if entry is not None and entry.revision == current:
            _entries.move_to_end(slide_id)
            return entry.features
        build_lock = _build_locks.setdefault(slide_id, threading.Lock())
    with build_lock:  # concurrent strips of one opening wait for a single build
        with _lock:
            entry = _entries.get(slide_id)
            if entry is not None and entry.revision == current:
                return entry.features
        features = dict(build())
        _store(slide_id, _SlideEntry(current, features, sum(len(t) for t in features.values())))
        return features


def _store(slide_id: int, entry: _SlideEntry) -> None:
    global _total
    with _lock:
        old = _entries.pop(slide_id, None)
        if old is not None:
            _total -= old.size
        if entry.size > MAX_CACHED_BYTES:
            return
        _entries[slide_id] = entry
        _total += entry.size
        while _total > MAX_CACHED_BYTES and _entries:
            _, evicted = _entries.popitem(last=False)
            _total -= evicted.size


def clear() -> None:
    """Forget everything (tests; a new app in the same process)."""
    global _total
    with _lock:
        _entries.clear()
        _total = 0
