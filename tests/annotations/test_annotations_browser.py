"""Annotation tools in Debian's Chromium against the real app: draw every shape type with the
mouse, check displayed length/area against the slide's known microns-per-pixel (within 1 %),
edit (vertex, class, comment), undo/redo round-tripping to the server, an HTML-looking comment
shown as text, rotation keeping shapes on their tissue, and everything persisted after reload."""

from __future__ import annotations

import math
import re

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide
from tests.browser_helpers import login, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("consultation_grant")]

MPP = 0.25          # synthetic_slide is written with mpp=0.25 (3000 × 2200 px)
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def tiled_slide(client_for, world, synthetic_slide, demo_case_id, ready_slide):
    ready_slide(demo_case_id, synthetic_slide)
    world.expire_all()
    slide = world.scalars(select(Slide).order_by(Slide.id.desc())).first()
    return slide.id


def screen(page, x: float, y: float, role: str = "primary") -> tuple[float, float]:
    """Page coordinates of slide pixel (x, y), computed with OpenSeadragon's own conversion."""
    return tuple(page.evaluate(
        """([x, y, role]) => {
            const v = role === "compare" ? pathologyViewer.compareViewer : pathologyViewer.viewer;
            const item = v.world.getItemAt(0);
            const p = v.viewport.viewportToViewerElementCoordinates(item.imageToViewportCoordinates(x, y, true));
            const r = v.container.getBoundingClientRect();
            return [r.left + p.x, r.top + p.y];
        }""", [x, y, role]))


def state(page) -> dict:
    return page.evaluate("pathologyViewer.annotations.state()")


def settle(page, count: int) -> None:
    wait_until(page, f"pathologyViewer.annotations.state().pending === 0 && "
                     f"pathologyViewer.annotations.state().primary.count === {count}")


def displayed(page, what: str) -> float:
    """A measurement from the details panel, converted to µm or µm²."""
    text = page.locator(f".ph-ann-details dd[data-measure={what}]").inner_text()
    m = re.fullmatch(r"([0-9.]+) (µm²|mm²|µm|mm)", text.strip())
    assert m, text
    value = float(m.group(1))
    return value * {"µm": 1, "mm": 1000, "µm²": 1, "mm²": 1e6}[m.group(2)]


def drag(page, a, b, steps=12):
    page.mouse.move(*screen(page, *a))
    page.mouse.down()
    page.mouse.move(*screen(page, *b), steps=steps)
    page.mouse.up()


def tool(page, name: str) -> None:
    page.click(f".ph-ann-tool[data-tool={name}]")


def overlay_alpha(page, x: float, y: float, radius: int = 3, role: str = "primary") -> int:
    """Largest overlay alpha within `radius` CSS px of slide pixel (x, y) placed by OSD's conversion."""
    sx, sy = screen(page, x, y, role)
    return page.evaluate(
        """([sx, sy, radius, role]) => {
            const c = pathologyViewer.annotations.layer(role).canvas;
            const r = c.getBoundingClientRect();
            const k = c.width / r.width;
            const px = Math.round((sx - r.left) * k), py = Math.round((sy - r.top) * k), rr = Math.ceil(radius * k);
            const d = c.getContext("2d").getImageData(px - rr, py - rr, 2 * rr + 1, 2 * rr + 1).data;
            let best = 0;
            for (let i = 3; i < d.length; i += 4) best = Math.max(best, d[i]);
            return best;
        }""", [sx, sy, radius, role])


def test_draw_measure_edit_rotate_persist(browser, live_server, tiled_slide, demo_case_id, client_for,  # noqa: F811
                                          artifacts):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page = login(ctx, live_server, "pathologist")
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={tiled_slide}")
    wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready")
    assert state(page)["primary"]["canCreate"] is True
    assert page.locator(".ph-ann-tools").is_visible()
    wait_until(page, "pathologyViewer.drawState().primary.fullyLoaded")

    # Line (ruler): 1800 px → 450 µm.
    tool(page, "line")
    drag(page, (600, 1500), (2400, 1500))
    settle(page, 1)
    assert math.isclose(displayed(page, "length"), 1800 * MPP, rel_tol=0.01)

    # Rectangle 1000 × 800 px → 50,000 µm².
    tool(page, "rectangle")
    drag(page, (500, 300), (1500, 1100))
    settle(page, 2)
    assert math.isclose(displayed(page, "area"), 1000 * 800 * MPP ** 2, rel_tol=0.01)
    assert math.isclose(displayed(page, "perimeter"), 3600 * MPP, rel_tol=0.01)
    rect_id = state(page)["primary"]["selectedId"]

    # Polygon (click the corners, Enter closes): right triangle 800 × 700 px.
    tool(page, "polygon")
    for p in ((2000, 300), (2800, 300), (2800, 1000)):
        page.mouse.click(*screen(page, *p))
    page.keyboard.press("Enter")
    settle(page, 3)
    assert math.isclose(displayed(page, "area"), 0.5 * 800 * 700 * MPP ** 2, rel_tol=0.01)

    # Ellipse in a 600 × 500 box (shortcut E), a point (P), freehand loop (F).
    page.keyboard.press("e")
    drag(page, (300, 1600), (900, 2100))
    settle(page, 4)
    assert math.isclose(displayed(page, "area"), math.pi * 300 * 250 * MPP ** 2, rel_tol=0.01)
    page.keyboard.press("p")
    page.mouse.click(*screen(page, 1200, 1800))
    settle(page, 5)
    page.keyboard.press("f")
    loop = [(1600 + 250 * math.cos(a / 10), 1800 + 200 * math.sin(a / 10)) for a in range(0, 63)]
    page.mouse.move(*screen(page, *loop[0]))
    page.mouse.down()
    for p in loop[1:]:
        page.mouse.move(*screen(page, *p))
    page.mouse.up()
    settle(page, 6)
    assert math.isclose(displayed(page, "area"), math.pi * 250 * 200 * MPP ** 2, rel_tol=0.03)
    page.screenshot(path=str(artifacts / "annotations-drawn.png"))

    # Edit the rectangle: select it, drag its bottom-right corner 200 px right.
    page.keyboard.press("v")
    page.mouse.click(*screen(page, 1000, 300))
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {rect_id}")
    drag(page, (1500, 1100), (1700, 1100), steps=6)
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    assert math.isclose(displayed(page, "area"), 1200 * 800 * MPP ** 2, rel_tol=0.01)
    c = client_for("pathologist")
    api = f"/api/v1/slides/{tiled_slide}/annotations"
    stored = {f["id"]: f for f in c.get(api).json["features"]}
    assert stored[rect_id]["properties"]["version"] == 2
    assert stored[rect_id]["properties"]["shape"] == "rectangle"
    xs = [p[0] for p in stored[rect_id]["geometry"]["coordinates"][0]]
    assert abs(max(xs) - 1700) < 6 and abs(min(xs) - 500) < 6

    # Move the line: a first click selects it, dragging the selected line moves it (+100 px in y).
    line_id = next(f["id"] for f in c.get(api).json["features"] if f["geometry"]["type"] == "LineString")
    page.mouse.click(*screen(page, 1200, 1500))
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {line_id}")
    drag(page, (1200, 1500), (1200, 1600), steps=6)
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    coords = next(f for f in c.get(api).json["features"] if f["id"] == line_id)["geometry"]["coordinates"]
    assert all(abs(y - 1600) < 6 for _, y in coords) and abs(coords[0][0] - 600) < 6, coords
    page.keyboard.press("Control+z")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    coords = next(f for f in c.get(api).json["features"] if f["id"] == line_id)["geometry"]["coordinates"]
    assert all(abs(y - 1500) < 6 for _, y in coords), coords
    page.mouse.click(*screen(page, 1000, 300))
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {rect_id}")

    # Class and an HTML-looking comment: stored as typed, shown as text.
    page.select_option(".ph-ann-details .ph-ann-class", "stroma")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    page.fill(".ph-ann-details .ph-ann-comment", XSS)
    page.click(".ph-ann-save-comment")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    assert page.locator("[data-testid=annotation-comment]").inner_text() == XSS
    assert page.locator(".ph-ann-item", has_text="<img").count() == 1
    assert page.evaluate("document.querySelectorAll('#viewer-app img[src=x], .ph-ann-section img').length") == 0
    feature = c.get(api).json["features"]
    feature = next(f for f in feature if f["id"] == rect_id)
    assert feature["properties"]["comment"] == XSS and feature["properties"]["class"] == "stroma"

    # Undo the comment, then the class (server follows); redo the class.
    page.keyboard.press("Control+z")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    page.keyboard.press("Control+z")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    props = next(f for f in c.get(api).json["features"] if f["id"] == rect_id)["properties"]
    assert props["comment"] == "" and props["class"] == "tumour"
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+y")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0 && "
                     "pathologyViewer.annotations.state().redo === 0")
    props = next(f for f in c.get(api).json["features"] if f["id"] == rect_id)["properties"]
    assert props["comment"] == XSS and props["class"] == "stroma"

    # Undo a deletion re-creates the shape on the server.
    point_id = next(f["id"] for f in c.get(api).json["features"] if f["geometry"]["type"] == "Point")
    page.click(f".ph-ann-item[data-annotation-id='{point_id}']")
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {point_id}")
    page.keyboard.press("Delete")
    settle(page, 5)
    assert len(c.get(api).json["features"]) == 5
    page.keyboard.press("Control+z")
    settle(page, 6)
    assert len(c.get(api).json["features"]) == 6

    # Rotate 90°: shapes stay on the same slide pixels (placed by OSD's own conversion).
    page.keyboard.press("Escape")
    page.evaluate("pathologyViewer.setState({rotation: 0, x: 0.5, y: 0.5, zoom: 1})")
    page.click(".ph-btn[aria-label='Rotate 90° right']")
    wait_until(page, "pathologyViewer.getState().rotation === 90")
    wait_until(page, "pathologyViewer.viewer.viewport.getRotation(true) === 90")
    page.click(".ph-btn[aria-label='Fit to screen']")
    page.wait_for_timeout(1000)
    box = page.locator(".ph-pane-primary").bounding_box()
    for x, y in ((1500, 1500), (1000, 1500), (2400, 650), (2800, 650), (1700, 700), (500, 700)):
        sx, sy = screen(page, x, y)
        assert box["x"] < sx < box["x"] + box["width"] and box["y"] < sy < box["y"] + box["height"]
        assert overlay_alpha(page, x, y) > 0, (x, y)
    assert overlay_alpha(page, 1000, 700, radius=2) == 0      # inside the (unselected) rectangle: outline only
    page.screenshot(path=str(artifacts / "annotations-rotated.png"))

    # Reload: everything persisted and drawn again.
    page.reload()
    wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready")
    assert state(page)["primary"]["count"] == 6
    groups = page.locator(".ph-ann-group").count()
    assert groups >= 2          # tumour and stroma at least
    page.click(f".ph-ann-item[data-annotation-id='{rect_id}']")
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {rect_id}")
    assert page.locator("[data-testid=annotation-comment]").inner_text() == XSS
    assert math.isclose(displayed(page, "area"), 1200 * 800 * MPP ** 2, rel_tol=0.01)
    page.screenshot(path=str(artifacts / "annotations-reloaded.png"))
    kinds = sorted(f["geometry"]["type"] for f in c.get(api).json["features"])
    assert kinds == ["LineString", "Point", "Polygon", "Polygon", "Polygon", "Polygon"]
    assert not dialogs, dialogs
    assert not errors, errors

    # Hide a group (class "tumour" holds the line): its shapes leave the canvas; show it again.
    page.keyboard.press("Escape")
    wait_until(page, "pathologyViewer.annotations.state().primary.selectedId === null")
    page.wait_for_timeout(300)
    assert overlay_alpha(page, 1500, 1500) > 0
    page.uncheck(".ph-ann-group[data-group='tumour'] .ph-ann-group-toggle")
    page.wait_for_timeout(300)
    assert overlay_alpha(page, 1500, 1500) == 0
    page.check(".ph-ann-group[data-group='tumour'] .ph-ann-group-toggle")
    page.wait_for_timeout(300)
    assert overlay_alpha(page, 1500, 1500) > 0
    ctx.close()


def test_read_only_before_signing(browser, live_server, tiled_slide, demo_case_id, client_for):  # noqa: F811
    c = client_for("pathologist")
    line = {"type": "LineString", "coordinates": [[100, 100], [900, 100]]}
    assert c.post(f"/api/v1/slides/{tiled_slide}/annotations", json={"geometry": line}).status_code == 201
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={tiled_slide}")
    wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready")
    st = state(page)["primary"]
    assert st["canCreate"] is False and st["count"] == 0 and st["error"]["status"] == 403
    assert not page.locator(".ph-ann-tools").is_visible()
    assert "report is signed" in page.locator(".ph-ann-status").inner_text()
    ctx.close()


def test_side_by_side_and_version_conflict(browser, live_server, client_for, world, synthetic_slide,
                                           demo_case_id, artifacts, tmp_path, ready_slide):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    second = write_synthetic_slide(tmp_path / "ihc.svs", 2600, 2000, mpp=0.5, seed=21)
    ready_slide(demo_case_id, synthetic_slide)
    ready_slide(demo_case_id, second, stain="Ki-67")
    world.expire_all()
    first_id, second_id = [s.id for s in world.scalars(select(Slide).order_by(Slide.id))][-2:]
    c = client_for("pathologist")

    def rect(x0, y0, x1, y1):
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    a = c.post(f"/api/v1/slides/{first_id}/annotations",
               json={"geometry": rect(200, 200, 1200, 1000), "properties": {"class": "tumour", "shape": "rectangle"}})
    b = c.post(f"/api/v1/slides/{second_id}/annotations",
               json={"geometry": rect(1400, 1000, 2400, 1800), "properties": {"class": "stroma", "shape": "rectangle"}})
    assert a.status_code == b.status_code == 201

    ctx = browser.new_context(viewport={"width": 1500, "height": 900})
    errors: list[str] = []
    page = login(ctx, live_server, "pathologist")
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer?slide={first_id}&compare={second_id}")
    wait_until(page, "window.pathologyViewer && pathologyViewer.annotations.state().primary.ready && "
                     "pathologyViewer.annotations.state().compare && pathologyViewer.annotations.state().compare.ready")
    st = state(page)
    assert st["primary"]["slideId"] == first_id and st["primary"]["count"] == 1
    assert st["compare"]["slideId"] == second_id and st["compare"]["count"] == 1
    page.evaluate("""pathologyViewer.setState({sync: false});
        for (const v of [pathologyViewer.viewer, pathologyViewer.compareViewer]) {
            v.viewport.setRotation(90, true);
            v.viewport.goHome(true);
        }""")
    page.wait_for_timeout(1200)
    page.screenshot(path=str(artifacts / "annotations-side-by-side.png"))
    # Each pane draws its own slide's shape, on its own slide pixels (edge midpoints of each rectangle).
    for role, points in (("primary", ((200, 600), (700, 200), (1200, 600), (700, 1000))),
                         ("compare", ((1400, 1400), (1900, 1000), (2400, 1400), (1900, 1800)))):
        pane = page.locator(f".ph-pane-{role}").bounding_box()
        for x, y in points:
            sx, sy = screen(page, x, y, role)
            assert pane["x"] < sx < pane["x"] + pane["width"] and pane["y"] < sy < pane["y"] + pane["height"]
            assert overlay_alpha(page, x, y, role=role) > 0, (role, x, y)
    # …and not the other slide's: the compare slide's rectangle is not drawn on the primary pane.
    assert overlay_alpha(page, 1900, 1800, role="primary") == 0

    # Someone else (here: the same author in another tab) changes the shape; this page's edit gets 409,
    # a clear message, and the server's version.
    ann = a.json
    assert c.patch(f"/api/v1/slides/{first_id}/annotations/{ann['id']}", json={"comment": "changed elsewhere"},
                   headers={"If-Match": '"1"'}).status_code == 200
    page.click(f".ph-ann-item[data-annotation-id='{ann['id']}']")
    wait_until(page, f"pathologyViewer.annotations.state().primary.selectedId === {ann['id']}")
    page.select_option(".ph-ann-details .ph-ann-class", "necrosis")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    assert "changed this annotation" in page.locator(".ph-toast").inner_text()
    wait_until(page, "document.querySelector('[data-testid=annotation-comment]') && "
                     "document.querySelector('[data-testid=annotation-comment]').textContent === 'changed elsewhere'")
    props = c.get(f"/api/v1/slides/{first_id}/annotations").json["features"][0]["properties"]
    assert props["class"] == "tumour" and props["version"] == 2
    # Applying the change again now works.
    page.select_option(".ph-ann-details .ph-ann-class", "necrosis")
    wait_until(page, "pathologyViewer.annotations.state().pending === 0")
    props = c.get(f"/api/v1/slides/{first_id}/annotations").json["features"][0]["properties"]
    assert props["class"] == "necrosis" and props["version"] == 3
    assert not errors, errors
    ctx.close()
