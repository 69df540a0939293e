"""Server-side SVG bar charts for the turnaround dashboard.

Why server-side SVG: the page stays script-free (the CSP forbids inline script and inline
styles, and nothing may load from a CDN), the chart is in the HTML the admin downloads or
prints, and it can be tested by parsing XML.  The SVG tree is built with ElementTree, so
every label (institution and pathologist names are often Chinese, and come from user
input) is XML-escaped by the serialiser rather than by hand.  Colours are SVG presentation
attributes (``fill=``), which the CSP allows, and classes that ``app.css`` may refine.

Bars are horizontal: category labels such as "省医科大学附属医院 Provincial University
Hospital" are far too long to sit under a vertical bar.  Each category gets one bar per
series (median and 90th percentile); a bar's length is proportional to its value on a
linear axis that starts at zero.

The functions here take already-translated strings, so the module needs neither Flask nor
a request and can be unit-tested directly.
"""

from __future__ import annotations

import math
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from markupsafe import Markup

SVG_NS = "http://www.w3.org/2000/svg"

# Geometry of the chart in SVG user units; the SVG scales to its container via viewBox.
WIDTH = 640
FONT = 13
BAR = 13
BAR_GAP = 3
ROW_GAP = 12
TOP = 34           # room for the legend
AXIS = 40          # room below the plot for tick labels and the unit
LABEL_MAX = 220    # widest category label column before labels are shortened
VALUE_ROOM = 70    # room right of the longest bar for its value label
PAD = 8

# Days are easier to read than hours once the longest bar passes three days.
DAYS_FROM_HOURS = 72


@dataclass(frozen=True)
class Series:
    """One bar per category, e.g. the median of each institution."""
    key: str          # machine name, ends up in data-series and the CSS class
    label: str        # translated legend text
    values: Sequence[float]
    fill: str


@dataclass(frozen=True)
class ChartText:
    """Translated words the charts need (the caller translates; this module stays Flask-free)."""
    median: str = "Median"
    p90: str = "90th percentile"
    hours: str = "hours"
    days: str = "days"
    hours_short: str = "h"
    days_short: str = "d"


@dataclass(frozen=True)
class Chart:
    """A rendered chart and what it shows, for the template and for tests."""
    kind: str                 # institution | pathologist
    stage: str
    title: str
    svg: Markup
    categories: list[str] = field(default_factory=list)


def text_width(text: str, font: float = FONT) -> float:
    """Rough rendered width: East Asian wide characters take a full em, others about 0.6 em."""
    return sum(font if unicodedata.east_asian_width(ch) in ("W", "F") else font * 0.6 for ch in text)


def shorten(text: str, limit: float, font: float = FONT) -> str:
    """Cut a label to ``limit`` units with an ellipsis; the full text stays in the bar's <title>."""
    if text_width(text, font) <= limit:
        return text
    out = ""
    for ch in text:
        if text_width(out + ch + "…", font) > limit:
            break
        out += ch
    return out.rstrip() + "…"


def nice_step(maximum: float, ticks: int = 5) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10^k) giving about ``ticks`` intervals up to ``maximum``."""
    if maximum <= 0 or not math.isfinite(maximum):
        return 1.0
    raw = maximum / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def fmt(value: float) -> str:
    """Numbers without trailing zeros for ticks and data attributes: 12, 2.5, 0.0025."""
    if value == int(value):
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def short(value: float) -> str:
    """Bar labels: one decimal from 1 up (5.8), two below (0.25), so small stages stay visible."""
    return fmt(round(value, 1 if value >= 1 else 2))


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: object) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = text
    return el


def hbar_chart(title: str, categories: Sequence[str], series: Sequence[Series], *, unit: str,
               unit_short: str, testid: str = "chart") -> Markup:
    """A horizontal grouped bar chart as an inline ``<svg>`` string.

    ``series`` values are already in ``unit`` (e.g. hours or days) and must be
    non-negative; NaN or missing values draw an empty (zero-length) bar.
    """
    for s in series:
        if len(s.values) != len(categories):
            raise ValueError(f"series {s.key!r} has {len(s.values)} values for {len(categories)} categories")
    values = [v for s in series for v in s.values if v is not None and math.isfinite(v)]
    if any(v < 0 for v in values):
        raise ValueError("bar values must not be negative")
    top = max(values, default=0.0)
    step = nice_step(top)
    axis_max = step * max(1, math.ceil(top / step - 1e-9))

    label_w = min(LABEL_MAX, max((text_width(c) for c in categories), default=0) + PAD)
    plot_x = PAD + label_w + PAD
    plot_w = WIDTH - plot_x - VALUE_ROOM
    group_h = len(series) * BAR + (len(series) - 1) * BAR_GAP
    plot_h = len(categories) * (group_h + ROW_GAP) + ROW_GAP
    height = TOP + plot_h + AXIS

    svg = ET.Element("svg", {"xmlns": SVG_NS, "viewBox": f"0 0 {WIDTH} {height}", "width": str(WIDTH),
                             "height": str(height), "role": "img", "class": "chart",
                             "data-testid": testid, "data-axis-max": fmt(axis_max), "data-unit": unit,
                             "font-family": "sans-serif", "font-size": str(FONT)})
    _el(svg, "title", title)

    # Legend.
    x = plot_x
    for s in series:
        _el(svg, "rect", x=x, y=10, width=12, height=12, fill=s.fill, class_=f"legend legend-{s.key}")
        _el(svg, "text", s.label, x=x + 16, y=20, fill="#334155")
        x += 16 + text_width(s.label) + 24

    # Grid lines and tick labels; the unit sits under the axis.
    axis_y = TOP + plot_h
    n_ticks = round(axis_max / step)
    for i in range(n_ticks + 1):
        tick = i * step
        tx = plot_x + plot_w * tick / axis_max
        _el(svg, "line", x1=f"{tx:.2f}", y1=TOP, x2=f"{tx:.2f}", y2=axis_y, stroke="#e2e8f0", class_="grid")
        _el(svg, "text", fmt(tick), x=f"{tx:.2f}", y=axis_y + 15, fill="#64748b", text_anchor="middle",
            class_="tick")
    _el(svg, "line", x1=plot_x, y1=axis_y, x2=plot_x + plot_w, y2=axis_y, stroke="#94a3b8")
    _el(svg, "text", unit, x=f"{plot_x + plot_w / 2:.2f}", y=axis_y + 33, fill="#334155", text_anchor="middle",
        class_="axis-label")

    # Bars.
    for ci, name in enumerate(categories):
        y0 = TOP + ROW_GAP + ci * (group_h + ROW_GAP)
        group = _el(svg, "g", class_="category", data_category=name)
        _el(group, "text", shorten(name, label_w - PAD), x=plot_x - PAD, y=f"{y0 + group_h / 2 + FONT / 3:.2f}",
            fill="#0f172a", text_anchor="end", class_="category-label")
        for si, s in enumerate(series):
            value = s.values[ci]
            value = value if value is not None and math.isfinite(value) else 0.0
            w = plot_w * value / axis_max
            y = y0 + si * (BAR + BAR_GAP)
            bar = _el(group, "rect", x=plot_x, y=y, width=f"{w:.3f}", height=BAR, fill=s.fill,
                      class_=f"bar bar-{s.key}", data_series=s.key, data_value=fmt(value))
            _el(bar, "title", f"{name} · {s.label}: {short(value)} {unit_short}")
            _el(group, "text", f"{short(value)} {unit_short}", x=f"{plot_x + w + 4:.2f}", y=y + BAR - 3,
                fill="#334155", class_="bar-value")
    return Markup(ET.tostring(svg, encoding="unicode"))


MEDIAN_FILL = "#2563eb"
P90_FILL = "#f59e0b"


def turnaround_charts(data: Mapping[str, Iterable[Mapping]], stages: Sequence[str], *,
                      names: Mapping[str, Mapping[str, str]] | None = None,
                      stage_label: Callable[[str], str] = str, text: ChartText = ChartText()) -> dict[str, list[Chart]]:
    """Charts for the dashboard rows of ``turnaround.dashboard()``: per kind, one chart per stage
    with one median bar and one 90th-percentile bar for each institution or pathologist.

    ``names`` maps a kind to ``{group code: display name}`` (institution names, pathologists'
    full names); unknown groups keep their code.  A chart switches from hours to days when its
    longest bar passes three days.
    """
    names = names or {}
    out: dict[str, list[Chart]] = {}
    for kind in ("institution", "pathologist"):
        rows = list(data.get(kind, []))
        charts: list[Chart] = []
        for stage in stages:
            stage_rows = [r for r in rows if r["stage"] == stage]
            if not stage_rows:
                continue
            cats = [names.get(kind, {}).get(r["group"], r["group"]) for r in stage_rows]
            med = [float(r["median_hours"]) for r in stage_rows]
            p90 = [float(r["p90_hours"]) for r in stage_rows]
            in_days = max(med + p90) > DAYS_FROM_HOURS
            if in_days:
                med, p90 = [v / 24 for v in med], [v / 24 for v in p90]
            title = stage_label(stage)
            svg = hbar_chart(title, cats, [Series("median", text.median, med, MEDIAN_FILL),
                                           Series("p90", text.p90, p90, P90_FILL)],
                             unit=text.days if in_days else text.hours,
                             unit_short=text.days_short if in_days else text.hours_short,
                             testid=f"chart-{kind}-{stage}")
            charts.append(Chart(kind, stage, title, svg, cats))
        out[kind] = charts
    return out
