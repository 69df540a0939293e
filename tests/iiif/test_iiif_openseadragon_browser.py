"""OpenSeadragon's own IIIF tile source (not the platform's viewer) shows a slide from /iiif/3, from a
page on another origin allowed by CORS_ALLOWED_ORIGINS, as an external viewer would."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser_helpers import login, wait_until
from tests.iiif.test_iiif_http import squares_tiff

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
OSD = ROOT / "viewer" / "node_modules" / "openseadragon" / "build" / "openseadragon" / "openseadragon.min.js"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><script src="openseadragon.min.js"></script></head>
<body style="margin:0;background:#000"><div id="osd" style="width:500px;height:500px"></div>
<script>
window.loaded = false;
const v = OpenSeadragon({id: "osd", tileSources: "%(info)s", ajaxWithCredentials: true,
  showNavigationControl: false, animationTime: 0, immediateRender: true});
v.addHandler("open", () => v.world.getItemAt(0).addHandler("fully-loaded-change",
  (e) => { window.loaded = e.fullyLoaded; }));
v.addHandler("open-failed", (e) => { window.failed = String(e.message); });
</script></body></html>"""


def test_openseadragon_iiif_tile_source_shows_the_slide(world, settings, ready_slide, demo_case_id, live_server,
                                                        browser, tmp_path):
    from iiif_validator.validator import ValidationInfo
    slide_id = ready_slide(demo_case_id, squares_tiff(tmp_path / "squares.tiff"))
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(OSD, site / "openseadragon.min.js")
    (site / "index.html").write_text(PAGE % {"info": f"{live_server}/iiif/3/{slide_id}/info.json"})
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_port}"
    settings.cors_allowed_origins = (origin,)
    ctx = browser.new_context(viewport={"width": 500, "height": 500})
    try:
        login(ctx, live_server, "tech")            # the viewer page borrows the signed-in session
        page = ctx.new_page()
        page.goto(f"{origin}/index.html")
        wait_until(page, "window.loaded || window.failed", timeout=30)
        assert page.evaluate("window.failed || null") is None
        shot = tmp_path / "osd.png"
        page.locator("#osd").screenshot(path=str(shot))
    finally:
        ctx.close()
        settings.cors_allowed_origins = ()
        server.shutdown()
    px = np.asarray(Image.open(shot).convert("RGB"), np.int16)
    colours = ValidationInfo().colorInfo
    hits = 0
    for x, y in ((0, 0), (3, 7), (9, 9), (5, 2), (8, 1)):   # square centres: 1000 px image in 500 px
        got = px[y * 50 + 25, x * 50 + 25]
        hits += int(np.abs(got - colours[x][y]).max() < 12)
    assert hits == 5, "OpenSeadragon did not show the slide's squares in their colours"
