"""QIDO-RS matching (PS3.18 §8.3.4) over the platform's derived DICOM attributes.

Supported: single value matching, UID list matching (comma or backslash separated), wildcard
matching with ``*`` and ``?`` for strings, ``includefield`` (accepted; every attribute the platform
knows is returned anyway), ``limit`` and ``offset``. Attributes are named by keyword or by tag
(``0020000D``). An attribute the platform does not know is refused with a clear error rather than
silently ignored, so a client never mistakes "not filtered" for "no match".
"""

from __future__ import annotations

import fnmatch
from typing import Any, Iterable, Mapping

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from ..errors import ValidationFailed

#: Query keys that are not attribute filters.
CONTROL_KEYS = {"includefield", "limit", "offset", "fuzzymatching"}
MAX_LIMIT = 1000


def _tag_hex(key: str) -> str | None:
    """'0020000D' for 'StudyInstanceUID' or '0020000D'; None for unknown names."""
    key = key.strip()
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return key.upper()
    tag = tag_for_keyword(key)
    return f"{tag:08X}" if tag is not None else None


def parse(args: Mapping[str, Iterable[str]] | Any, supported: set[str]) -> tuple[dict[str, list[str]], int, int]:
    """(filters by tag hex, offset, limit) from request arguments; ValidationFailed on unknown keys.

    ``args`` is a MultiDict-like mapping (``getlist``) or a mapping of lists."""
    filters: dict[str, list[str]] = {}
    offset, limit = 0, MAX_LIMIT
    keys = list(args.keys())
    for key in keys:
        values = args.getlist(key) if hasattr(args, "getlist") else list(args[key])
        low = key.lower()
        if low in ("limit", "offset"):
            try:
                number = int(values[-1])
            except ValueError:
                raise ValidationFailed(f"{key} must be a whole number.", code="invalid_query") from None
            if number < 0:
                raise ValidationFailed(f"{key} must not be negative.", code="invalid_query")
            if low == "limit":
                limit = min(number, MAX_LIMIT)
            else:
                offset = number
            continue
        if low in CONTROL_KEYS:
            continue
        tag = _tag_hex(key)
        if tag is None or tag not in supported:
            raise ValidationFailed(f"{key} is not a supported QIDO-RS matching attribute.",
                                   code="unsupported_query_attribute")
        split: list[str] = []
        for value in values:
            split.extend(v for v in value.replace("\\", ",").split(",") if v != "")
        filters[tag] = split
    return filters, offset, limit


def _values(item: Mapping[str, Any], tag: str) -> list[str]:
    element = item.get(tag)
    if not element:
        return []
    out = []
    for v in element.get("Value", []):
        if isinstance(v, Mapping) and "Alphabetic" in v:
            out.append(str(v["Alphabetic"]))
        else:
            out.append(str(v))
    return out


def _vr(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


def matches(item: Mapping[str, Any], filters: Mapping[str, list[str]]) -> bool:
    for tag, wanted in filters.items():
        if not wanted:
            continue  # "present in the response" (universal matching)
        have = _values(item, tag)
        vr = _vr(tag)
        ok = False
        for pattern in wanted:
            for value in have:
                if vr in ("UI", "DA", "TM", "DT", "IS", "DS", "US", "UL", "SS", "SL", "FL", "FD"):
                    ok = value == pattern
                elif "*" in pattern or "?" in pattern:
                    ok = fnmatch.fnmatchcase(value.lower(), pattern.lower())
                else:
                    ok = value == pattern
                if ok:
                    break
            if ok:
                break
        if not ok:
            return False
    return True


def search(items: Iterable[Mapping[str, Any]], filters: Mapping[str, list[str]], offset: int = 0,
           limit: int = MAX_LIMIT) -> list[Mapping[str, Any]]:
    found = [i for i in items if matches(i, filters)]
    return found[offset:offset + limit]


def keyword(tag: str) -> str:
    return keyword_for_tag(int(tag, 16)) or tag
