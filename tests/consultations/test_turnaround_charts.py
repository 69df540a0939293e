"""SVG charts of the turnaround dashboard: well-formed, proportional, escaped, admin only."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from pathology_hub.domain import consultations as svc
from pathology_hub.domain import turnaround as tat
from pathology_hub.models import utcnow
from pathology_hub.models.consultations import ConsultationState as S
from pathology_hub.web import charts

NS = {"svg": charts.SVG_NS}


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == f"{{{charts.SVG_NS}}}svg"
    return root


def bars(root: ET.Element, series: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{{{charts.SVG_NS}}}rect") if r.get("data-series") == series]


def test_bars_are_proportional_and_on_a_round_axis():
    svg = charts.hbar_chart("t", ["A", "B", "C"], [charts.Series("median", "Median", [2.0, 4.0, 9.0], "#00f"),
                                                   charts.Series("p90", "P90", [3.0, 8.0, 0.0], "#f00")],
                            unit="hours", unit_short="h")
    root = parse(svg)
    med, p90 = bars(root, "median"), bars(root, "p90")
    assert len(med) == 3 and len(p90) == 3
    assert root.get("data-axis-max") == "10"  # 9 rounds up to the next tick of 2
    widths = [float(r.get("width")) for r in med + p90]
    values = [2, 4, 9, 3, 8, 0]
    unit = widths[0] / 2
    for w, v in zip(widths, values):
        assert w == pytest.approx(v * unit, abs=0.01)
    assert widths[-1] == 0
    # All bars start on the axis; the axis unit is written under it.
    assert len({r.get("x") for r in med + p90}) == 1
    assert [t.text for t in root.iter(f"{{{charts.SVG_NS}}}text") if t.get("class") == "axis-label"] == ["hours"]
    ticks = [t.text for t in root.iter(f"{{{charts.SVG_NS}}}text") if t.get("class") == "tick"]
    assert ticks == ["0", "2", "4", "6", "8", "10"]


def test_names_are_escaped_and_chinese_survives():
    evil = '<script>alert("x")</script> & 张病理'
    svg = str(charts.hbar_chart("<b>title</b>", [evil], [charts.Series("median", "中位数", [1.5], "#00f")],
                                unit="小时", unit_short="小时"))
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    group = root.find("svg:g", NS)
    assert group.get("data-category") == evil  # the parser gives back exactly the text that went in
    assert "张病理" in "".join(root.itertext())


def test_invalid_series_are_refused():
    with pytest.raises(ValueError):
        charts.hbar_chart("t", ["A", "B"], [charts.Series("median", "m", [1.0], "#000")], unit="h", unit_short="h")
    with pytest.raises(ValueError):
        charts.hbar_chart("t", ["A"], [charts.Series("median", "m", [-1.0], "#000")], unit="h", unit_short="h")


def test_empty_and_zero_values_still_draw():
    root = parse(str(charts.hbar_chart("t", ["A"], [charts.Series("median", "m", [0.0], "#000")],
                                       unit="h", unit_short="h")))
    assert root.get("data-axis-max") == "1" and bars(root, "median")[0].get("width") == "0.000"


def test_long_labels_are_shortened_with_the_full_name_in_the_tooltip():
    name = "省医科大学附属医院 Provincial University Hospital of a Very Long Name Indeed"
    root = parse(str(charts.hbar_chart("t", [name], [charts.Series("median", "m", [1.0], "#000")],
                                       unit="h", unit_short="h")))
    label = next(t for t in root.iter(f"{{{charts.SVG_NS}}}text") if t.get("class") == "category-label")
    assert label.text.endswith("…") and charts.text_width(label.text) <= charts.LABEL_MAX
    assert name in root.find(".//svg:rect[@data-series='median']/svg:title", NS).text


def test_turnaround_charts_one_chart_per_stage_and_days_for_long_stages():
    data = {"institution": [
        {"group": "DIST1", "stage": "submitted_to_assigned", "count": 3, "median_hours": 2.0, "p90_hours": 5.0},
        {"group": "UNIV", "stage": "submitted_to_assigned", "count": 1, "median_hours": 1.0, "p90_hours": 1.0},
        {"group": "DIST1", "stage": "accepted_to_reported", "count": 2, "median_hours": 96.0, "p90_hours": 120.0}],
        "pathologist": []}
    out = charts.turnaround_charts(data, tat.STAGES, names={"institution": {"DIST1": "东城区人民医院"}},
                                   text=charts.ChartText(hours="小时", days="天"))
    assert out["pathologist"] == []
    first, second = out["institution"]
    assert (first.stage, second.stage) == ("submitted_to_assigned", "accepted_to_reported")
    assert first.categories == ["东城区人民医院", "UNIV"]  # a code without a name stays a code
    root = parse(str(first.svg))
    assert [r.get("data-value") for r in bars(root, "median")] == ["2", "1"]
    assert root.get("data-unit") == "小时"
    long = parse(str(second.svg))
    assert long.get("data-unit") == "天"
    assert [r.get("data-value") for r in bars(long, "median") + bars(long, "p90")] == ["4", "5"]


def _reported(users, make_consultation, db, *, receiving: str, assignee: str, hours: tuple[float, float, float]):
    """A request submitted, assigned, accepted and reported at the given offsets (hours before now)."""
    c = make_consultation(S.IN_REVIEW, receiving=receiving, assignee=assignee)
    now = utcnow()
    c.submitted_at = now - dt.timedelta(hours=hours[0])
    c.assigned_at = now - dt.timedelta(hours=hours[1])
    c.accepted_at = now - dt.timedelta(hours=hours[2])
    db.commit()
    return c


def test_dashboard_page_has_the_charts_for_admins_only(client_for, make_consultation, db, users, world):
    # DIST1: two requests waiting 2 h and 6 h for assignment; UNIV: one waiting 10 h.
    _reported(users, make_consultation, db, receiving="DIST1", assignee="pathologist", hours=(3, 1, 0.5))
    _reported(users, make_consultation, db, receiving="DIST1", assignee="pathologist", hours=(8, 2, 1))
    _reported(users, make_consultation, db, receiving="UNIV", assignee="expert", hours=(12, 2, 1))
    users["expert"].full_name = '<script>alert(1)</script> 陈教授'
    db.commit()

    admin = client_for("admin")
    resp = admin.get("/admin/turnaround")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; 陈教授" in html
    svgs = re.findall(r"<svg xmlns=.*?</svg>", html, flags=re.S)
    stage_charts = {parse(s).get("data-testid"): parse(s) for s in svgs}
    inst = stage_charts["chart-institution-submitted_to_assigned"]
    groups = {g.get("data-category"): g for g in inst.iter(f"{{{charts.SVG_NS}}}g")}
    assert set(groups) == {"东城区人民医院 Dongcheng District Hospital", "省医科大学附属医院 Provincial University Hospital"}
    dist_median = groups["东城区人民医院 Dongcheng District Hospital"].find("svg:rect[@data-series='median']", NS)
    univ_median = groups["省医科大学附属医院 Provincial University Hospital"].find("svg:rect[@data-series='median']", NS)
    assert float(dist_median.get("data-value")) == pytest.approx(4.0, abs=0.01)   # median of 2 h and 6 h
    assert float(univ_median.get("data-value")) == pytest.approx(10.0, abs=0.01)
    assert float(dist_median.get("width")) / float(univ_median.get("width")) == pytest.approx(0.4, abs=0.01)
    dist_p90 = groups["东城区人民医院 Dongcheng District Hospital"].find("svg:rect[@data-series='p90']", NS)
    assert float(dist_p90.get("data-value")) == pytest.approx(5.6, abs=0.01)      # 2 + 0.9 × 4

    path = stage_charts["chart-pathologist-assigned_to_accepted"]
    names = [g.get("data-category") for g in path.iter(f"{{{charts.SVG_NS}}}g")]
    assert sorted(names) == sorted(["张病理 Zhang (pathologist)", '<script>alert(1)</script> 陈教授'])
    assert len(bars(path, "median")) == 2 and len(bars(path, "p90")) == 2
    # Stages nobody completed have no chart.
    assert "chart-institution-accepted_to_reported" not in stage_charts

    # The CSV export is unchanged.
    csv = admin.get("/api/v1/turnaround?format=csv")
    assert csv.mimetype == "text/csv"
    assert "institution,DIST1,submitted_to_assigned,2,4.0,5.6" in csv.get_data(as_text=True)

    for role in ("tech", "clinician", "pathologist", "expert"):
        assert client_for(role).get("/admin/turnaround").status_code == 403


def test_dashboard_page_in_chinese(client_for, make_consultation, db, users):
    _reported(users, make_consultation, db, receiving="DIST1", assignee="pathologist", hours=(3, 1, 0.5))
    admin = client_for("admin")
    admin.post("/lang", data={"lang": "zh_CN", "csrf_token": admin.csrf})
    html = admin.get("/admin/turnaround").get_data(as_text=True)
    assert "中位数" in html and "第90百分位" in html and ">小时</text>" in html


def test_dashboard_without_data_has_no_charts(client_for):
    html = client_for("admin").get("/admin/turnaround").get_data(as_text=True)
    assert "<svg xmlns" not in html


def test_state_machine_history_feeds_the_chart(world, users, make_consultation, client_for):
    """A request driven through real transitions shows up as bars (not only hand-set timestamps)."""
    db = world
    c = make_consultation(S.DRAFT)
    t0 = utcnow() - dt.timedelta(hours=30)
    svc.submit(db, users["tech"], c, now=t0, skip_slide_check_for_demo_seed=True)
    svc.assign(db, users["admin"], c, users["pathologist"].id, now=t0 + dt.timedelta(hours=3))
    db.commit()
    html = client_for("admin").get("/admin/turnaround").get_data(as_text=True)
    svg = re.search(r'<svg xmlns=[^>]*data-testid="chart-institution-submitted_to_assigned".*?</svg>', html, re.S)
    root = parse(svg.group(0))
    assert [r.get("data-value") for r in bars(root, "median")] == ["3"]


@pytest.mark.parametrize("top,ticks", [
    (0.03, ["0", "0.01", "0.02", "0.03"]),
    (0.012, ["0", "0.0025", "0.005", "0.0075", "0.01", "0.0125"]),
    (140, ["0", "50", "100", "150"]),
    (1, ["0", "0.2", "0.4", "0.6", "0.8", "1"]),
])
def test_round_ticks(top, ticks):
    root = parse(str(charts.hbar_chart("t", ["A"], [charts.Series("median", "m", [top], "#000")],
                                       unit="h", unit_short="h")))
    assert [t.text for t in root.iter(f"{{{charts.SVG_NS}}}text") if t.get("class") == "tick"] == ticks
