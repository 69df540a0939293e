"""Finding 7b of issue 16: a figure's link back to the viewer accepts only this case's viewer
page on this origin; everything a browser might read as another host is refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pathology_hub.domain.view_links import normalise_view_link
from pathology_hub.models.reports import ReportFigure

from .conftest import ok, start_report

BASE = "https://hub.example.org"
EVIL = [
    "//evil.example/phish", "/\\evil.example/phish", "\\\\evil.example/phish", "/\t/evil.example/phish",
    "/\n/evil.example", "/%2F/evil.example/phish", "/%5Cevil.example/phish", "%2F%2Fevil.example",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "https://evil.example/cases/7/viewer",
    "https://hub.example.org.evil.example/cases/7/viewer", "https://hub.example.org@evil.example/cases/7/viewer",
    "http://hub.example.org/cases/7/viewer", "//hub.example.org/cases/7/viewer", "///evil.example/cases/7/viewer",
    "/cases/7/viewer/../../../evil", "/cases/7/viewer/", "/cases/8/viewer?slide=1", "/cases/7/viewer;x",
    "/cases/07x/viewer", "/cases/7/viewer?slide=1&next=//evil.example", "/cases/7/viewer?slide=javascript:1",
    "/cases/7/viewer?slide=1&slide=2", "/cases/7/viewer?z=inf", "/cases/7/viewer?x=nan", "/cases/%37/viewer",
    "/cases/7/viewer?slide=1 ", "/cases/7/viewer\u2028", "/cases/7/viewer?slide=\u0661", "cases/7/viewer",
    "", "/", "?slide=1",
]


@pytest.mark.parametrize("link", EVIL)
def test_evil_links_are_refused(link):
    assert normalise_view_link(link, case_id=7, base_url=BASE) is None


@pytest.mark.parametrize("link, canonical", [
    ("/cases/7/viewer?slide=3&x=0.5&y=0.25&z=2&r=90", "/cases/7/viewer?slide=3&x=0.5&y=0.25&z=2&r=90"),
    ("/cases/7/viewer?r=-90.0&slide=3&compare=4&z=1.5e1", "/cases/7/viewer?slide=3&compare=4&z=1.5e1&r=-90.0"),
    ("https://hub.example.org/cases/7/viewer?slide=3#frag", "/cases/7/viewer?slide=3"),
    ("HTTPS://HUB.example.org/cases/7/viewer?slide=3", "/cases/7/viewer?slide=3"),
    ("/cases/7/viewer", "/cases/7/viewer"),
])
def test_viewer_links_are_rebuilt(link, canonical):
    assert normalise_view_link(link, case_id=7, base_url=BASE) == canonical


def test_figure_capture_refuses_evil_links_and_page_never_links_off_site(client_for, scenario, db):
    p = client_for("pathologist")
    report = start_report(p, scenario.consultation_id)
    base = {"slide_id": scenario.slide_id, "x": 0.5, "y": 0.5, "zoom": 2.0, "rotation": 0,
            "container_width": 400, "container_height": 300, "caption": "view"}
    for link in ("//evil.example/phish", "/\\evil.example/phish", "/\t/evil.example/phish", "javascript:alert(1)",
                 f"/cases/{scenario.case_id}/viewer?slide=1&next=//evil.example"):
        resp = p.post(f"/api/v1/reports/{report['id']}/figures", json={**base, "url": link})
        assert resp.status_code == 422, link
        assert resp.get_json()["error"]["code"] == "invalid_view_link"
    assert db.scalars(select(ReportFigure)).all() == []
    good = f"http://127.0.0.1:8000/cases/{scenario.case_id}/viewer?slide={scenario.slide_id}&x=0.5&z=2"
    added = ok(p.post(f"/api/v1/reports/{report['id']}/figures", json={**base, "url": good}), 201)
    # made same-origin, and the old window-relative z= rewritten as a magnification (issue 15 item 5)
    stored = added["current"]["figures"][0]["view_link"]
    assert stored.startswith(f"/cases/{scenario.case_id}/viewer?slide={scenario.slide_id}&x=0.5&")
    assert "&m=" in stored and "z=" not in stored
    # A link stored before this check (written straight into the table) is not rendered as a link.
    db.expire_all()
    fig = db.scalars(select(ReportFigure)).one()
    fig.view_link = "//evil.example/phish"
    db.commit()
    data = ok(p.get(f"/api/v1/reports/{report['id']}"))
    assert data["current"]["figures"][0]["view_link"] is None
