"""Key views: the editor's "capture current view" request is turned into a server-rendered figure."""

from __future__ import annotations

import io
import json

from PIL import Image
from sqlalchemy import select

from pathology_hub.models.reports import ReportFigure

from .conftest import DRAFT, ok, save, sign, start_report


def _view(scenario, **over):
    # the viewer's state: centre as fractions of the image width and height, OpenSeadragon zoom
    # (zoom 2 shows half the image width); centred on level-0 pixel (800, 600) of the 1600 x 1200 slide
    body = {"slide_id": scenario.slide_id, "x": 0.5, "y": 0.5, "zoom": 2.0, "rotation": 0,
            "container_width": 800, "container_height": 600, "caption": "Invasive nests / 浸润性癌巢",
            "url": f"/cases/{scenario.case_id}/viewer?slide={scenario.slide_id}&x=0.5&y=0.5&z=2"}
    body.update(over)
    return body


def test_capture_renders_the_region_with_annotations_and_goes_into_the_pdf(client_for, scenario, db):
    p = client_for("pathologist")
    # an annotation in the middle of the view, in the palette's tumour colour
    geom = {"type": "Polygon", "coordinates": [[[700, 500], [900, 500], [900, 700], [700, 700], [700, 500]]]}
    ann = p.post(f"/api/v1/slides/{scenario.slide_id}/annotations", json={"geometry": geom, "class": "Tumor"})
    if ann.status_code == 422:  # palette names differ per network: take the first class
        first = p.get("/api/v1/annotation-classes").json["classes"][0]["name"]
        ann = p.post(f"/api/v1/slides/{scenario.slide_id}/annotations", json={"geometry": geom, "class": first})
    assert ann.status_code == 201, ann.get_data(as_text=True)
    color = ann.json["properties"].get("color") or "#00a0ff"
    report = start_report(p, scenario.consultation_id)
    rev0 = report["current"]["revision"]
    added = ok(p.post(f"/api/v1/reports/{report['id']}/figures", json=_view(scenario)), 201)
    assert added["current"]["revision"] == rev0 + 1  # a figure is part of what gets signed
    fig = added["current"]["figures"][0]
    assert fig["caption"] == "Invasive nests / 浸润性癌巢" and "z=" not in fig["view_link"]
    # an old viewer's window-relative z=2 in an 800 px pane of a 1600 px, 0.25 µm/px slide: 1 screen px
    # per image px = 40× objective-equivalent, written into the link the caption describes
    assert fig["view_link"].endswith("m=40") and fig["magnification"] == "40×"
    row = db.scalars(select(ReportFigure)).one()
    # visible width = 1/zoom of 1600 px = 800 px; height = 800 * 600/800 = 600 px; centred on (800, 600)
    assert json.loads(row.bounds) == [400.0, 300.0, 1200.0, 900.0]
    png = p.get(fig["image_url"])
    assert png.status_code == 200 and png.mimetype == "image/png"
    img = Image.open(io.BytesIO(png.data)).convert("RGB")
    assert img.width == 800 and img.height == 600
    want = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    # the annotation outline runs along x = 300..500 (image px) at y = 200 in the figure
    hits = sum(1 for x in range(280, 520) for y in range(195, 206)
               if sum(abs(a - b) for a, b in zip(img.getpixel((x, y)), want)) < 60)
    assert hits > 50, f"annotation outline in {color} not drawn ({hits} px)"
    # nobody else sees or adds figures; bad input is a 422
    assert client_for("tech").get(fig["image_url"]).status_code == 404
    assert p.post(f"/api/v1/reports/{report['id']}/figures", json=_view(scenario, zoom=0)).status_code == 422
    assert p.post(f"/api/v1/reports/{report['id']}/figures", json=_view(scenario, slide_id=99999)).status_code == 422
    assert p.post(f"/api/v1/reports/{report['id']}/figures",
                  json=_view(scenario, url="https://evil.example/x")).status_code == 422
    assert p.post(f"/api/v1/reports/{report['id']}/figures", json=_view(scenario, x=40.0)).status_code == 422

    # a second figure, deleted again while drafting
    second = ok(p.post(f"/api/v1/reports/{report['id']}/figures", json=_view(scenario, zoom=4.0, caption="x")), 201)
    fid = second["figure_id"]
    after = ok(p.delete(f"/api/v1/reports/{report['id']}/figures/{fid}"))
    assert [f["caption"] for f in after["current"]["figures"]] == ["Invasive nests / 浸润性癌巢"]

    signed = sign(p, save(p, after, DRAFT))
    assert len(signed["current"]["figures"]) == 1
    pdf = client_for("clinician").get(f"/api/v1/reports/{report['id']}/pdf").data
    assert b"/Subtype /Image" in pdf
    # figures of a signed version cannot be removed
    resp = p.delete(f"/api/v1/reports/{report['id']}/figures/{fig['id']}")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "report_signed"
    # the clinician now sees the figure of the signed version
    assert client_for("clinician").get(fig["image_url"]).status_code == 200


def test_view_bounds_follow_the_viewer_convention():
    from pathology_hub.domain.reports import view_bounds
    assert view_bounds(1600, 1200, 0.5, 0.5, 2, 800, 600) == (400, 300, 1200, 900)
    assert view_bounds(1600, 1200, 0.25, 0.25, 4, 1000, 500) == (200, 200, 600, 400)
    # a view turned by 90° covers the pane's height across the image width
    x0, y0, x1, y1 = view_bounds(1600, 1200, 0.5, 0.5, 2, 800, 600, 90)
    assert (round(x1 - x0), round(y1 - y0)) == (600, 800)


def test_caption_magnification_is_the_one_the_link_reopens_at(client_for, scenario):
    p = client_for("pathologist")
    report = start_report(p, scenario.consultation_id)
    url = f"/cases/{scenario.case_id}/viewer?slide={scenario.slide_id}&x=0.5&y=0.5&m=10&r=90&g=1.3"
    added = ok(p.post(f"/api/v1/reports/{report['id']}/figures",
                      json=_view(scenario, zoom=0.5, rotation=90, url=url, magnification=15.2)), 201)
    fig = added["current"]["figures"][-1]
    assert fig["magnification"] == "10×"            # the link's, not a number the link would not reproduce
    assert "m=10" in fig["view_link"] and "r=90" in fig["view_link"] and "g=1.3" in fig["view_link"]
    # No link from the client: the server writes one with the view's centre, rotation and magnification.
    added = ok(p.post(f"/api/v1/reports/{report['id']}/figures",
                      json=_view(scenario, zoom=0.5, url="", magnification=None)), 201)
    fig = added["current"]["figures"][-1]
    assert fig["magnification"] == "10×"            # 0.5 × 800 / 1600 screen px per px × 40
    assert fig["view_link"].startswith(f"/cases/{scenario.case_id}/viewer?slide={scenario.slide_id}&")
    assert "m=10" in fig["view_link"] and "x=0.5" in fig["view_link"]
