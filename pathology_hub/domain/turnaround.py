"""Turnaround time (TAT): targets per priority, the clock, and the per-stage dashboard.

The clock runs from submission to report and pauses while the request waits on the
referring centre (information requested), because that wait is not the reviewing
pathologist's to answer for.  Routine targets count working days only (Saturday
and Sunday skipped, in the network's time zone).

Targets are configurable per network with ``TURNAROUND_TARGETS``: a JSON object, or
``@/path/to/file.json``, e.g. ``{"frozen": {"minutes": 30}, "urgent": {"hours": 24},
"routine": {"working_days": 5}}``; ``TURNAROUND_TIMEZONE`` (default Asia/Shanghai)
decides where a weekend starts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..models import Institution, Priority, User, as_utc
from ..models.consultations import Consultation

APPROACHING = 0.8
DAY = 86400


@dataclass(frozen=True)
class Target:
    seconds: int
    working_days_only: bool = False


DEFAULT_TARGETS = {"frozen": Target(20 * 60), "urgent": Target(24 * 3600), "routine": Target(5 * DAY, True)}


def _parse_target(name: str, spec: Any) -> Target:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise RuntimeError(f"TURNAROUND_TARGETS[{name!r}] must be one of minutes/hours/days/working_days")
    (unit, amount), = spec.items()
    factor = {"minutes": 60, "hours": 3600, "days": DAY, "working_days": DAY}.get(unit)
    if factor is None or not isinstance(amount, (int, float)) or amount <= 0:
        raise RuntimeError(f"TURNAROUND_TARGETS[{name!r}]: unknown unit {unit!r} or non-positive amount")
    return Target(int(amount * factor), unit == "working_days")


def targets() -> dict[str, Target]:
    """Targets per priority: the defaults, overridden by ``TURNAROUND_TARGETS``."""
    raw = os.environ.get("TURNAROUND_TARGETS", "").strip()
    result = dict(DEFAULT_TARGETS)
    # Frozen sections: minutes from submission to the signed report (FROZEN_TARGET_MINUTES, default 20).
    result["frozen"] = Target(int(os.environ.get("FROZEN_TARGET_MINUTES", "20") or 20) * 60)
    if raw:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise RuntimeError(f"TURNAROUND_TARGETS is not valid JSON: {exc}") from None
        for name, spec in (data or {}).items():
            result[name] = _parse_target(name, spec)
    return result


def timezone() -> ZoneInfo:
    return ZoneInfo(os.environ.get("TURNAROUND_TIMEZONE", "Asia/Shanghai"))


# ---------------------------------------------------------------- the clock
def elapsed(start: dt.datetime, end: dt.datetime, working_days_only: bool = False) -> float:
    """Seconds from start to end; with ``working_days_only`` Saturdays and Sundays do not count."""
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        return 0.0
    if not working_days_only:
        return (end - start).total_seconds()
    tz = timezone()
    local, stop = start.astimezone(tz), end.astimezone(tz)
    total = 0.0
    while local < stop:
        midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        chunk_end = min(midnight, stop)
        if local.weekday() < 5:
            total += (chunk_end - local).total_seconds()
        local = chunk_end
    return total


def paused_intervals(c: Consultation) -> list[tuple[dt.datetime, dt.datetime | None]]:
    try:
        pairs = json.loads(c.paused_intervals or "[]")
    except ValueError:
        return []
    return [(dt.datetime.fromisoformat(a), dt.datetime.fromisoformat(b) if b else None) for a, b in pairs]


def set_paused_intervals(c: Consultation, intervals: Sequence[tuple[dt.datetime, dt.datetime | None]]) -> None:
    c.paused_intervals = json.dumps([[as_utc(a).isoformat(), as_utc(b).isoformat() if b else None]
                                     for a, b in intervals])


def pause(c: Consultation, now: dt.datetime) -> None:
    """Start waiting on the centre (information requested)."""
    intervals = paused_intervals(c)
    if not intervals or intervals[-1][1] is not None:
        intervals.append((now, None))
    set_paused_intervals(c, intervals)


def resume(c: Consultation, now: dt.datetime) -> None:
    intervals = paused_intervals(c)
    if intervals and intervals[-1][1] is None:
        intervals[-1] = (intervals[-1][0], now)
    set_paused_intervals(c, intervals)


def effective_seconds(start: dt.datetime, end: dt.datetime, intervals: Iterable[tuple[dt.datetime, dt.datetime | None]],
                      working_days_only: bool = False) -> float:
    """Elapsed time minus the paused intervals that fall inside [start, end]."""
    start, end = as_utc(start), as_utc(end)
    total = elapsed(start, end, working_days_only)
    for a, b in intervals:
        a, b = max(as_utc(a), start), min(as_utc(b) if b else end, end)
        if b > a:
            total -= elapsed(a, b, working_days_only)
    return max(total, 0.0)


@dataclass(frozen=True)
class TatStatus:
    elapsed_seconds: float
    target_seconds: int
    fraction: float
    flag: str  # ok | approaching | overdue while open; met | missed once reported

    def as_json(self) -> dict[str, Any]:
        return {"elapsed_seconds": round(self.elapsed_seconds), "target_seconds": self.target_seconds,
                "fraction": round(self.fraction, 3), "flag": self.flag}


def status(c: Consultation, now: dt.datetime) -> TatStatus | None:
    """Where a request stands against its target; ``None`` before submission."""
    if c.submitted_at is None:
        return None
    target = targets().get(c.priority.value, DEFAULT_TARGETS["routine"])
    end = as_utc(c.reported_at) or as_utc(now)
    spent = effective_seconds(c.submitted_at, end, paused_intervals(c), target.working_days_only)
    fraction = spent / target.seconds
    if c.reported_at is not None:
        flag = "met" if fraction <= 1 else "missed"
    else:
        flag = "overdue" if fraction >= 1 else "approaching" if fraction >= APPROACHING else "ok"
    return TatStatus(spent, target.seconds, fraction, flag)


# ---------------------------------------------------------------- dashboard
STAGES = ("submitted_to_assigned", "assigned_to_accepted", "accepted_to_reported", "reported_to_acknowledged")


def stage_seconds(c: Consultation) -> dict[str, float]:
    """Calendar seconds per completed stage; review time excludes the waits on the centre."""
    marks = [c.submitted_at, c.assigned_at, c.accepted_at, c.reported_at, c.acknowledged_at]
    out: dict[str, float] = {}
    for name, a, b in zip(STAGES, marks, marks[1:]):
        if a is None or b is None:
            continue
        if name == "accepted_to_reported":
            out[name] = effective_seconds(a, b, paused_intervals(c))
        else:
            out[name] = elapsed(a, b)
    return out


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so small samples stay meaningful."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def dashboard(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Median and 90th percentile hours per stage, per receiving institution and per pathologist.

    Frozen sections are left out: their minutes are reported on their own (:func:`frozen_figures`)."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    rows = session.scalars(select(Consultation).where(Consultation.submitted_at.is_not(None),
                                                      Consultation.priority != Priority.FROZEN))
    for c in rows:
        inst = c.receiving_institution.code if c.receiving_institution else "—"
        who = c.assignee.username if c.assignee else None
        for stage, seconds in stage_seconds(c).items():
            groups.setdefault(("institution", inst, stage), []).append(seconds)
            if who:
                groups.setdefault(("pathologist", who, stage), []).append(seconds)
    out: dict[str, list[dict[str, Any]]] = {"institution": [], "pathologist": []}
    for (kind, name, stage), values in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], STAGES.index(kv[0][2]))):
        out[kind].append({"group": name, "stage": stage, "count": len(values),
                          "median_hours": round(percentile(values, 50) / 3600, 2),
                          "p90_hours": round(percentile(values, 90) / 3600, 2)})
    return out


def frozen_figures(session: Session) -> dict[str, Any]:
    """Frozen sections on their own, in minutes from submission to the signed report.

    Their target is minutes, not hours: folded into the hourly stage table they would read as
    0.2 h and hide a pathologist who takes 40 minutes.  Only requests that were reported count."""
    target = targets()["frozen"].seconds / 60
    minutes = [(as_utc(c.reported_at) - as_utc(c.submitted_at)).total_seconds() / 60
               for c in session.scalars(select(Consultation).where(
                   Consultation.priority == Priority.FROZEN, Consultation.submitted_at.is_not(None),
                   Consultation.reported_at.is_not(None)))]
    if not minutes:
        return {"count": 0, "target_minutes": round(target), "median_minutes": None, "p90_minutes": None,
                "within_target_percent": None}
    within = sum(1 for m in minutes if m <= target)
    return {"count": len(minutes), "target_minutes": round(target),
            "median_minutes": round(percentile(minutes, 50), 1), "p90_minutes": round(percentile(minutes, 90), 1),
            "within_target_percent": round(100 * within / len(minutes), 1)}


def dashboard_csv(data: dict[str, list[dict[str, Any]]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["group_type", "group", "stage", "count", "median_hours", "p90_hours"])
    for kind in ("institution", "pathologist"):
        for row in data[kind]:
            writer.writerow([kind, row["group"], row["stage"], row["count"], row["median_hours"], row["p90_hours"]])
    return buf.getvalue()


def display_names(session: Session, data: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    """Labels for the dashboard's groups: institution codes to names, pathologists' usernames to full names."""
    usernames = {r["group"] for r in data["pathologist"]}
    return {"institution": {i.code: i.name for i in session.scalars(select(Institution))},
            "pathologist": {u.username: u.full_name
                            for u in session.scalars(select(User).where(User.username.in_(usernames)))}}
