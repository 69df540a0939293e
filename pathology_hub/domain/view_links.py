"""Links from a report figure back to the viewer: only this deployment's viewer page.

A check like ``startswith("/")`` lets through ``//evil.example/phish`` and
``/\\evil.example/phish`` (browsers read both as another host), so the link is parsed
and rebuilt instead: the path must be exactly ``/cases/<this case>/viewer``, the query
only the viewer's own numeric deep-link parameters. What is stored (and later rendered
as a link) is the rebuilt relative URL, never the submitted text.
"""

from __future__ import annotations

import math
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

VIEWER_PATH = re.compile(r"/cases/([0-9]{1,18})/viewer")
#: The deep-link parameters the viewer writes (viewer/src/viewer/deeplink.js) and how each is read.
PARAMS = {"slide": int, "compare": int, "x": float, "y": float, "z": float, "m": float, "p": float, "r": float,
          "b": float, "c": float, "g": float}  # z: old window-relative zoom; m/p: magnification; b/c/g: adjustments


def _number(cast, raw: str) -> str | None:
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", raw):
        return None
    try:
        value = cast(raw)
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return raw


def normalise_view_link(link: str, *, case_id: int, base_url: str) -> str | None:
    """The canonical relative viewer link for ``link``, or None when it is anything else.

    Accepted: ``/cases/<case_id>/viewer?slide=…`` relative, or absolute on ``base_url``'s
    own scheme and host. Refused: other hosts, scheme-relative and backslash forms,
    whitespace or control characters anywhere, encoded paths, ``javascript:`` and friends."""
    if not link or len(link) > 2000:
        return None
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in link):
        return None
    try:
        parts = urlsplit(link)
    except ValueError:
        return None
    if parts.scheme or parts.netloc:
        base = urlsplit(base_url)
        if (parts.scheme.lower(), parts.netloc.lower()) != (base.scheme.lower(), base.netloc.lower()):
            return None
    elif not link.startswith("/") or link.startswith("//"):
        return None
    match = VIEWER_PATH.fullmatch(parts.path)
    if match is None or int(match.group(1)) != case_id:
        return None
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        return None
    seen: dict[str, str] = {}
    for key, raw in pairs:
        if key not in PARAMS or key in seen:
            return None
        value = _number(PARAMS[key], raw)
        if value is None:
            return None
        seen[key] = value
    query = urlencode([(k, seen[k]) for k in PARAMS if k in seen])
    return f"/cases/{case_id}/viewer" + (f"?{query}" if query else "")
