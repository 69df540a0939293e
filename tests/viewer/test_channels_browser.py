"""Issue #19: the fluorescence channel panel in Debian's Chromium against the real app.

A 3-channel 16-bit OME-TIFF (DAPI, FITC, Cy5, each bright in its own third of the image) is
tiled channel by channel; the viewer composes the channels additively. Pixel checks on
screenshots: each third shows its channel's colour, a channel switched off loses its colour
(and only it), raising a window's lower limit darkens that channel only. The panning frame rate is
measured from inside the page against the composite alone in the same page: the channels are
composed on the client into one layer, so they draw about as fast (51 against 58 frames/s in
headless Chromium on a quiet machine here, where one additive layer per channel drew 20).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.browser_helpers import login, shots_dir, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = shots_dir("fluo19")


@pytest.fixture(scope="module")
def fluorescence_file(tmp_path_factory) -> Path:
    h, w = 900, 1200
    yy, xx = np.mgrid[0:h, 0:w]
    planes = []
    for k in range(3):  # a bright block in third k on a dim background, 12-bit values
        plane = np.full((h, w), 150, np.float64) + 20 * np.sin(xx / 30.0) ** 2
        inside = (xx >= k * 400 + 60) & (xx < k * 400 + 340) & (yy >= 200) & (yy < 700)
        plane[inside] = 2800 + 200 * np.cos(yy[inside] / 40.0)
        planes.append(plane.astype(np.uint16))
    path = tmp_path_factory.mktemp("fluo") / "three-channel.ome.tif"
    tifffile.imwrite(path, np.stack(planes), ome=True, photometric="minisblack", tile=(256, 256),
                     compression="zlib", metadata={"axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65,
                                                   "Channel": {"Name": ["DAPI", "FITC", "Cy5"]}})
    return path


def _shot(page, path: Path | None = None) -> np.ndarray:
    png = page.locator(".ph-pane-primary .ph-osd").screenshot(path=str(path) if path else None)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int32)


def _block_colour(page, img: np.ndarray, k: int) -> np.ndarray:
    """Mean colour of channel k's bright block on screen (image -> screen through OSD's viewport)."""
    box = page.evaluate(f"""(() => {{
        const v = pathologyViewer.viewer; const item = v.world.getItemAt(0);
        const at = (x, y) => v.viewport.viewportToViewerElementCoordinates(item.imageToViewportCoordinates(x, y));
        const a = at({k * 400 + 120}, 300), b = at({k * 400 + 280}, 600);
        return [a.x, a.y, b.x, b.y];
    }})()""")
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return img[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)


PAN_FOR_2S = """() => new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error("the pan loop did not finish")), 10000);
    const v = pathologyViewer.viewer; let frames = 0; const count = () => { frames += 1; };
    v.addHandler("update-viewport", count);
    const t0 = performance.now(); let i = 0;
    const step = () => {
      const t = performance.now() - t0;
      if (t >= 2000) { v.removeHandler("update-viewport", count); resolve(frames * 1000 / t); return; }
      i += 1;
      const c = v.viewport.getCenter();  // (the bundle exposes no OpenSeadragon global: move a Point it made)
      c.x += 0.002 * Math.cos(i / 20); c.y += 0.0015 * Math.sin(i / 25);
      v.viewport.panTo(c, true);
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
})"""


def _open(browser, live_server, demo_case_id, locale: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)
    page = login(ctx, live_server, "tech")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server}/cases/{demo_case_id}/viewer")
    wait_until(page, "window.pathologyViewer && pathologyViewer.channels.state().length === 3")
    # the composite (hidden) and one layer composing the three channels on the client
    wait_until(page, "pathologyViewer.viewer.world.getItemCount() === 2 && "
               "pathologyViewer.viewer.world.getItemAt(1).getFullyLoaded()", timeout=30)
    page.wait_for_timeout(400)  # colourised tiles drawn
    return ctx, page, errors


def test_channel_panel_composes_toggles_and_rewindows(browser, live_server, ready_slide, demo_case_id,
                                                      fluorescence_file):
    ready_slide(demo_case_id, fluorescence_file, stain="")
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx, page, errors = _open(browser, live_server, demo_case_id, "en")
    idle_raf = page.evaluate("""() => new Promise((resolve) => { let n = 0; const t0 = performance.now();
        const f = () => { n += 1; if (performance.now() - t0 < 1000) requestAnimationFrame(f); else resolve(n); };
        requestAnimationFrame(f); setTimeout(() => resolve(n), 3000); })""")
    print(f"idle animation frames/s: {idle_raf}")  # 60 in headless Chromium here
    state = page.evaluate("pathologyViewer.channels.state()")
    assert [(c["name"], c["colour"], c["on"]) for c in state] == [
        ("DAPI", "0000ff", True), ("FITC", "00ff00", True), ("Cy5", "ff00ff", True)]
    assert page.locator(".ph-channel-panel h2").text_content() == "Fluorescence channels"
    img = _shot(page, SHOTS / "channels-en.png")
    page.screenshot(path=str(SHOTS / "viewer-channels-en.png"))
    blue, green, magenta = (_block_colour(page, img, k) for k in range(3))
    assert blue[2] > 180 and blue[0] < 60 and blue[1] < 60, blue
    assert green[1] > 180 and green[0] < 60 and green[2] < 60, green
    assert magenta[0] > 180 and magenta[2] > 180 and magenta[1] < 60, magenta

    # FITC off (the panel's checkbox): green disappears there, the others keep their colour
    page.locator(".ph-channel[data-channel='1'] .ph-channel-on").uncheck()
    page.wait_for_timeout(300)
    img = _shot(page, SHOTS / "channels-fitc-off-en.png")
    assert _block_colour(page, img, 1).max() < 40
    assert _block_colour(page, img, 0)[2] > 180 and _block_colour(page, img, 2)[0] > 180
    page.locator(".ph-channel[data-channel='1'] .ph-channel-on").check()

    # Raise DAPI's lower window limit: its block darkens (client-side re-mapping), FITC's does not
    img = _shot(page)
    before, green_before = _block_colour(page, img, 0)[2], _block_colour(page, img, 1)[1]
    page.evaluate("pathologyViewer.channels.set(0, {lo: 235})")
    wait_until(page, "pathologyViewer.channels.state()[0].lo === 235")
    page.wait_for_timeout(600)
    img = _shot(page, SHOTS / "channels-dapi-window-en.png")
    assert _block_colour(page, img, 0)[2] < before - 40, (_block_colour(page, img, 0), before)
    assert abs(_block_colour(page, img, 1)[1] - green_before) < 3
    raw = page.evaluate("pathologyViewer.channels.state()[0].window")
    assert raw[0] > state[0]["window"][0] + 0.8 * (state[0]["window"][1] - state[0]["window"][0])  # file units

    # Panning for 2 s: the page moves the viewport on every animation frame (as a continuous drag
    # would), and OSD's update-viewport event (raised once per frame it draws) counts the frames
    # actually drawn. Driven from inside the page: Playwright mouse moves are one round trip each and
    # cap the rate at ~11/s. The anchor, measured in the same page from the same view: the slide's
    # composite alone, i.e. what a bright-field slide costs to draw.
    def pan_rate() -> float:
        page.evaluate("""() => { const v = pathologyViewer.viewer; v.viewport.goHome(true);
            v.viewport.zoomTo(v.viewport.getHomeZoom() * 3, null, true); }""")
        page.wait_for_timeout(1200)
        return page.evaluate(PAN_FOR_2S)

    layers = "pathologyViewer.viewer.world"

    def show(composite: bool) -> None:
        page.evaluate(f"() => {{ {layers}.getItemAt(0).setOpacity({int(composite)}); "
                      f"{layers}.getItemAt(1).setOpacity({int(not composite)}); }}")
    # Measured twice each, interleaved, and the best of each kept: the other test lanes load the same
    # two cores in bursts, and one burst inside a single 2 s window (29 against 47 frames/s once in CI)
    # says nothing about the composition.
    rates: dict[bool, list[float]] = {True: [], False: []}
    for composite in (True, False, True, False):
        show(composite)
        rates[composite].append(pan_rate())
    composite_fps, fps = max(rates[True]), max(rates[False])
    print(f"panning: 3 channels composed {fps:.1f} frames/s, the composite alone {composite_fps:.1f} "
          f"(idle animation {idle_raf}/s)")
    # 51 against 58 frames/s on a quiet machine here (the 30/s is met); one additive layer per
    # channel drew 20. The ratio holds under load too, where absolute rates fall with the other lanes.
    assert fps >= 0.7 * composite_fps, (fps, composite_fps)
    assert fps >= 10, f"{fps:.1f} frames/s while panning"
    assert not errors, errors
    ctx.close()

    ctx, page, errors = _open(browser, live_server, demo_case_id, "zh-CN")
    assert page.locator(".ph-channel-panel h2").text_content() == "荧光通道"
    page.screenshot(path=str(SHOTS / "viewer-channels-zh.png"))
    assert not errors, errors
    ctx.close()
