"""Institution time zones: times are stored in UTC and shown in the reader's institution's zone.

One text form is used for every time a person reads (pages, signatures, audit, history):
``2026-12-04 20:00 (UTC+08:00)``.  The numeric offset is written because two readers in
different institutions may otherwise read the same wall-clock text differently; it is also
language-neutral (no "CST", which means three different zones).  Machine formats (JSON, CSV)
use ISO 8601 with the offset (:func:`iso`).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..models.base import as_utc
from .errors import ValidationFailed

#: Zone of an institution that has not chosen one (the consortium is in mainland China).
DEFAULT_ZONE = "Asia/Shanghai"


@lru_cache(maxsize=64)
def zone(name: str | None) -> ZoneInfo:
    """The ``ZoneInfo`` for a stored zone name; an unknown or empty name falls back to the default."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def validate_zone(name: str | None) -> str:
    """An IANA zone name (``Asia/Shanghai``, ``UTC``) as typed by an administrator, checked with zoneinfo."""
    name = (name or "").strip()
    if not name:
        return DEFAULT_ZONE
    try:
        if len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed("Unknown time zone %(zone)s; use an IANA name such as Asia/Shanghai or Europe/London.",
                               code="invalid_time_zone", params={"zone": name},
                               details={"field": "time_zone"}) from None
    return name


def offset_text(value: dt.datetime) -> str:
    """``UTC+08:00`` for an aware datetime."""
    total = int((value.utcoffset() or dt.timedelta(0)).total_seconds() // 60)
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def local(value: dt.datetime | str | None, zone_name: str | None) -> dt.datetime | None:
    """A stored (UTC, possibly naive on SQLite) time, or its ISO 8601 text from a JSON shape, in the given zone."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return as_utc(value).astimezone(zone(zone_name))


def format_local(value: dt.datetime | str | None, zone_name: str | None, *, seconds: bool = False) -> str:
    """``2026-12-04 20:00 (UTC+08:00)``: the one text form of a time a person reads; "" for no time."""
    when = local(value, zone_name)
    if when is None:
        return ""
    return f"{when:%Y-%m-%d %H:%M{':%S' if seconds else ''}} ({offset_text(when)})"


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """ISO 8601 for JSON and CSV; datetimes always carry their offset (naive stored times are UTC)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return as_utc(value).isoformat()
    return value.isoformat()
