"""dicom-microscopy-viewer (npm, installed with the viewer's devDependencies) renders a slide from the
platform's DICOMweb endpoint in Chromium. The page and the library are served by the test itself on the
app's own origin (no CDN, no CORS), and the browser is logged in with an ordinary session cookie."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser_helpers import login, wait_until
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "viewer" / "node_modules"
DMV = MODULES / "dicom-microscopy-viewer" / "dist"
DWC = MODULES / "dicomweb-client" / "build"
SHOTS = Path("test-artifacts/shots/dicomweb20")

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script>
// Where the library loads its decode worker (and that worker its WebAssembly codecs) from: its
// documented setting for a host page (default "./static/js/"), here the package's own dist folder.
window.PUBLIC_LIB_URL = "/test-dmv/dmv/";
</script>
<script src="/test-dmv/lib/dicomweb-client.js"></script>
<script src="/test-dmv/dmv/dicomMicroscopyViewer.bundle.min.js"></script>
<style>#viewer{width:900px;height:600px}</style></head><body><div id="viewer"></div>
<script>
window.dmvState = "loading"; window.dmvEvents = [];
window.addEventListener("unhandledrejection", (e) => window.dmvEvents.push("rejection:" + e.reason));
window.addEventListener("error", (e) => window.dmvEvents.push("error:" + e.message));
for (const n of ["frame_loading_ended", "frame_loading_error", "loading_error", "loading_ended"]) {
  document.getElementById("viewer").addEventListener("dicommicroscopyviewer_" + n, (e) => window.dmvEvents.push(n + ":" + JSON.stringify(e.detail && e.detail.payload || "").slice(0, 200)));
}
(async () => {
  try {
    const client = new DICOMwebClient.api.DICOMwebClient({url: "/dicomweb"});
    const meta = await client.retrieveSeriesMetadata({studyInstanceUID: "%(study)s", seriesInstanceUID: "%(series)s"});
    const images = meta.map(m => new dicomMicroscopyViewer.metadata.VLWholeSlideMicroscopyImage({metadata: m}))
                       .filter(i => i.ImageType[2] === "VOLUME");
    const viewer = new dicomMicroscopyViewer.viewer.VolumeImageViewer({client, metadata: images});
    viewer.render({container: document.getElementById("viewer")});
    window.dmvViewer = viewer;
    window.dmvState = "rendered:" + images.length;
  } catch (e) { window.dmvState = "error:" + e; console.error(e); }
})();
</script></body></html>"""


@pytest.mark.browser
@pytest.mark.slow
def test_dicom_microscopy_viewer_renders_the_slide(app, browser, live_server, world, ready_slide, demo_case_id):
    require((DMV / "dicomMicroscopyViewer.bundle.min.js").exists() and (DWC / "dicomweb-client.js").exists(),
            "dicom-microscopy-viewer is not installed (cd viewer && npm ci)")
    from flask import Response, send_from_directory

    from pathology_hub.domain.dicom import uids
    from pathology_hub.models import Case, Slide
    slide = world.get(Slide, ready_slide(demo_case_id))
    world.expire_all()
    case = world.get(Case, demo_case_id)
    study, series = uids.study_uid(case.id, case.created_at), uids.slide_series_uid(slide.uid, slide.pyramid_version)
    # the library needs workers from blob:, WebAssembly and inline scripts: its own page, its own policy
    csp = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:; "
           "worker-src 'self' blob:; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self' blob: data:")

    def page():
        return Response(PAGE % {"study": study, "series": series}, mimetype="text/html",
                        headers={"Content-Security-Policy": csp})

    served: list[str] = []

    def dmv(name):
        served.append(name)
        # the bundle asks for "dataLoader.worker.min.js"; the package ships it as "...worker.bundle.min.js"
        name = {"dataLoader.worker.min.js": "dataLoader.worker.bundle.min.js"}.get(name, name)
        resp = send_from_directory(DMV, name)
        resp.headers["Content-Security-Policy"] = csp
        return resp

    app.add_url_rule("/test-dmv/page", "test_dmv_page", page)
    from flask import request as _rq
    app.before_request(lambda: served.append("req:" + _rq.path) if not _rq.path.startswith("/dicomweb") else None)
    app.add_url_rule("/test-dmv/dmv/<path:name>", "test_dmv_lib", dmv)
    app.add_url_rule("/test-dmv/lib/<path:name>", "test_dwc_lib", lambda name: send_from_directory(DWC, name))

    context = browser.new_context(viewport={"width": 1000, "height": 700})
    try:
        pg = login(context, live_server, "tech")
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.type + ":" + m.text))
        pg.on("worker", lambda w: w.on("console", lambda m: errors.append("worker:" + m.text)))
        frames: list[str] = []
        lib: list[str] = []
        pg.on("response", lambda r: lib.append(f"{r.status} {r.url[-60:]} {r.headers.get('content-type')}") if "/test-dmv/" in r.url else None)
        pg.on("response", lambda r: frames.append(r.url) if "/frames/" in r.url and r.status == 200 else None)
        pg.goto(f"{live_server}/test-dmv/page")
        wait_until(pg, "window.dmvState !== 'loading'", timeout=30)
        state = pg.evaluate("window.dmvState")
        assert state.startswith("rendered:"), (state, [e for e in errors if e.startswith("error")][:5])
        wait_until(pg, "document.querySelectorAll('#viewer canvas').length > 0", timeout=30)
        pg.wait_for_timeout(3000)
        assert frames, ("no frame was requested", [e for e in errors if e.startswith("error")][:5])
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = pg.locator("#viewer").screenshot(path=str(SHOTS / "dicom-microscopy-viewer.png"))
        from io import BytesIO

        import numpy as np
        from PIL import Image
        px = np.asarray(Image.open(BytesIO(shot)).convert("RGB"), dtype=int)
        tissue = (px[..., 0] - px[..., 1] > 40).mean()  # eosin pink: red well above green, as the slide has
        assert tissue > 0.2, ("no tissue colour in the viewer", tissue)
        assert px.std() > 10, ("the viewer shows a blank area", pg.evaluate("window.dmvEvents")[:6], len(frames),
                                [x for x in served if "test-dmv" in x or "worker" in x or x.endswith(".wasm")])
    finally:
        context.close()
