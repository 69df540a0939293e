"""JSON parsed from untrusted input, with its nesting bounded.

CPython's parser recurses once per nesting level: ``[[[[…]]]]`` 200,000 deep raised
``RecursionError`` (an HTTP 500) and anything a few hundred deep can still blow up code
that walks the result. No document this application accepts nests deeper than about ten
levels (a GeoJSON MultiPolygon inside a FeatureCollection is seven), so deeper input is
refused with a stable code before anyone walks it.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import DomainError

MAX_JSON_DEPTH = 64


class JsonTooDeep(DomainError):
    status = 400
    code = "json_too_deep"


def _too_deep(max_depth: int) -> JsonTooDeep:
    return JsonTooDeep("The JSON document is nested more than %(max_depth)s levels deep.",
                       details={"max_depth": max_depth})


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether containers in ``value`` nest more than ``max_depth`` levels (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def loads_bounded(raw: str | bytes | bytearray, *, max_depth: int = MAX_JSON_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` that answers :class:`JsonTooDeep` instead of recursing without end."""
    opens = (raw.count(b"[") + raw.count(b"{")) if isinstance(raw, (bytes, bytearray)) \
        else (raw.count("[") + raw.count("{"))
    try:
        value = json.loads(raw, **kwargs)
    except RecursionError:
        raise _too_deep(max_depth) from None
    if opens > max_depth and depth_exceeds(value, max_depth):  # fewer brackets than the bound: cannot exceed it
        raise _too_deep(max_depth)
    return value
