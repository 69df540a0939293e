"""Headless-Chromium check of the viewer and uploader bundles under the production CSP.

Run: /work/main/.venv/bin/python viewer/dev/check_viewer.py   (after `npm run build` in viewer/)
Screenshots go to /tmp/viewer-*.png and /tmp/upload-*.png.
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent))
import devserver  # noqa: E402

SLIDE = Path(__file__).resolve().parents[2] / ".." / "shared" / "slides" / "aperio-jpeg-CMU-1-Small-Region.svs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
I18N = {"zoomIn": "放大", "storageUnavailable": "存储暂时不可用，正在重试…"}


def viewer_config(facts: dict) -> dict:
    def slide(i: int, name: str, **extra) -> dict:
        base = {
            "id": i, "name": name, "stain": "H&E",
            "dziUrl": f"/dzi/{i}/slide.dzi?t=TOKEN{i}",
            "thumbnailUrl": f"/dzi/{i}/thumbnail.jpg",
            "status": "ready", "associatedImages": [{"name": "thumbnail", "url": f"/dzi/{i}/thumbnail.jpg"}],
            **{k: facts[k] for k in ("width", "height", "mpp", "objectivePower", "metadata")},
        }
        base.update(extra)
        return base

    return {
        "prefixUrl": "/dist/openseadragon/images/",
        "caseId": 12,
        "slides": [
            slide(5, "A1 H&E"),
            slide(6, "A2 H&E (template URLs)", tileUrlTemplate="/t/6/{level}/{col}_{row}.jpeg?t=TOKEN6",
                  status="tiling"),
        ],
        "initial": {"slideId": 5, "compareSlideId": None},
        "i18n": I18N,
    }


class Failures(list):
    def check(self, cond: bool, what: str) -> None:
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.append(what)


def wait_until(page, expr: str, timeout: float = 15000) -> None:
    """Poll with evaluate(): wait_for_function compiles its predicate with eval, which the CSP forbids."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(f"() => Boolean({expr})"):
                return
        except Exception as exc:  # page navigating or object not there yet
            if "Execution context was destroyed" not in str(exc) and "is not defined" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {expr}")
        page.wait_for_timeout(100)


def check_viewer(browser, base: str, state: devserver.DevState, failures: Failures) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 860})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/viewer.html")
    wait_until(page, "window.pathologyViewer && window.pathologyViewer.drawState().primary.fullyLoaded")
    page.wait_for_timeout(300)
    ds = page.evaluate("pathologyViewer.drawState()")
    canvas = ds["primary"]["canvas"]
    failures.check(canvas["drawn"] > 0.2 * canvas["sampled"], f"canvas drawn: {canvas['drawn']}/{canvas['sampled']}")
    failures.check(page.get_attribute(".ph-btn[aria-label='放大']", "title") == "放大", "i18n string used")
    failures.check(page.is_visible(".ph-scalebar"), "scale bar visible")
    presets = page.eval_on_selector_all(".ph-preset", "els => els.map(e => e.dataset.mag)")
    failures.check(presets == ["1", "2", "5", "10", "20"], f"presets capped at 20x: {presets}")
    page.screenshot(path="/tmp/viewer-home.png")

    page.click(".ph-preset[data-mag='20']")
    page.wait_for_timeout(1200)
    mag = page.evaluate("pathologyViewer.getState().magnification")
    failures.check(abs(mag - 20) < 0.2, f"20x preset -> {mag:.2f}x")
    wait_until(page, "pathologyViewer.drawState().primary.fullyLoaded")
    failures.check("20×" in page.inner_text(".ph-mag"), "toolbar shows 20×")
    failures.check(page.inner_text(".ph-scalebar-label") in {"50 µm", "20 µm", "100 µm"}, "scale bar label " + page.inner_text(".ph-scalebar-label"))
    page.screenshot(path="/tmp/viewer-20x.png")

    # rotation: keyboard 'r' (OSD default) and the toolbar button, then the free slider
    page.click(".ph-pane-primary .openseadragon-canvas", position={"x": 300, "y": 300})
    page.keyboard.press("r")
    page.wait_for_timeout(900)
    rot = page.evaluate("pathologyViewer.getState().rotation")
    failures.check(abs(rot - 90) < 0.5, f"'r' rotates to 90 ({rot})")
    page.click(".ph-btn[aria-label='Rotate 90° right']")
    page.wait_for_timeout(900)
    rot = page.evaluate("pathologyViewer.getState().rotation")
    failures.check(abs(rot % 360 - 180) < 0.5, f"button rotates to 180 ({rot})")
    page.fill(".ph-rotation", "30")
    page.wait_for_timeout(300)
    rot = page.evaluate("pathologyViewer.getState().rotation")
    failures.check(abs(rot - 30) < 0.5, f"slider rotates to 30 ({rot})")

    # side by side + sync; the second slide uses tileUrlTemplate
    page.check(".ph-compare-toggle")
    wait_until(page, "pathologyViewer.compareViewer && pathologyViewer.drawState().compare.fullyLoaded")
    page.wait_for_timeout(500)
    box = page.locator(".ph-pane-primary").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx - 120, cy - 80, steps=8)
    page.mouse.up()
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(1500)
    st = page.evaluate("pathologyViewer.getState()")
    cv = st["compareView"]
    failures.check(abs(cv["x"] - st["x"]) < 0.002 and abs(cv["y"] - st["y"]) < 0.002,
                   f"compare follows centre ({st['x']:.4f},{st['y']:.4f}) vs ({cv['x']:.4f},{cv['y']:.4f})")
    failures.check(abs(st["compareMagnification"] - st["magnification"]) < 0.05, "compare follows zoom")
    failures.check(abs(cv["rotation"] - st["rotation"]) < 0.5, "compare follows rotation")
    wait_until(page, "pathologyViewer.drawState().compare.fullyLoaded")
    failures.check(page.evaluate("pathologyViewer.drawState().compare.canvas.drawn") > 0, "compare canvas drawn")
    # driving the second pane drives the first (no feedback loop: values settle)
    box2 = page.locator(".ph-pane-compare").bounding_box()
    page.mouse.move(box2["x"] + box2["width"] / 2, box2["y"] + box2["height"] / 2)
    page.mouse.wheel(0, 200)
    page.wait_for_timeout(1500)
    st2 = page.evaluate("pathologyViewer.getState()")
    failures.check(abs(st2["compareMagnification"] - st2["magnification"]) < 0.05
                   and abs(st2["magnification"] - st["magnification"]) > 0.5, "primary follows compare pane")
    page.screenshot(path="/tmp/viewer-compare.png")

    # adjustments are applied through the SVG filter on both canvases
    page.fill("input[data-adjust='gamma']", "1.8")
    page.fill("input[data-adjust='contrast']", "30")
    filters = page.evaluate("[...document.querySelectorAll('.ph-osd .openseadragon-canvas canvas')].map(c => c.style.filter)")
    failures.check(sum("url(" in f for f in filters) >= 2, f"filter on both canvases: {filters}")
    page.screenshot(path="/tmp/viewer-adjusted.png")
    page.evaluate("pathologyViewer.setState({adjustments: {brightness: 0, contrast: 0, gamma: 1}})")

    # deep link round trip
    page.wait_for_timeout(600)
    href = page.evaluate("location.href")
    st = page.evaluate("pathologyViewer.getState()")
    failures.check("slide=5" in href and "compare=6" in href and "r=" in href, f"URL updated: {href}")
    copied = page.evaluate("pathologyViewer.copyLink()")
    failures.check(copied == href, "copy link returns current link")
    page2 = ctx.new_page()
    page2.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page2.goto(href)
    wait_until(page2, "pathologyViewer.compareViewer && pathologyViewer.drawState().primary.fullyLoaded")
    st3 = page2.evaluate("pathologyViewer.getState()")
    failures.check(abs(st3["x"] - st["x"]) < 1e-4 and abs(st3["y"] - st["y"]) < 1e-4
                   and abs(st3["zoom"] / st["zoom"] - 1) < 1e-3 and abs(st3["rotation"] - st["rotation"]) < 0.1
                   and st3["compareSlideId"] == 6, f"deep link restores view {st3['x']:.4f},{st3['y']:.4f},{st3['zoom']:.3f}")
    page2.close()

    failures.check(not errors, f"no console errors: {errors[:5]}")

    # storage outage: tiles answer 503 -> banner; recovery clears it
    page.uncheck(".ph-compare-toggle")
    state.fail_tiles = True
    page.evaluate("pathologyViewer.setState({slideId: 6, x: 0.2, y: 0.7, zoom: 6, rotation: 0})")
    wait_until(page, "pathologyViewer.drawState().storageBannerVisible", 20000)
    failures.check("存储暂时不可用" in page.inner_text(".ph-banner"), "translated storage banner shown")
    page.screenshot(path="/tmp/viewer-storage-down.png")
    state.fail_tiles = False
    try:
        wait_until(page, "!pathologyViewer.drawState().storageBannerVisible && pathologyViewer.drawState().primary.canvas.drawn > 0", 30000)
        failures.check(True, "banner cleared and tiles drawn after recovery")
    except TimeoutError:
        failures.check(False, f"recovery: {page.evaluate('pathologyViewer.drawState()')}")
        page.screenshot(path="/tmp/viewer-recovery-failed.png")
    page.screenshot(path="/tmp/viewer-recovered.png")
    ctx.close()

    # tablet layout with touch
    tctx = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True, is_mobile=True)
    tpage = tctx.new_page()
    terrors: list[str] = []
    tpage.on("console", lambda m: terrors.append(m.text) if m.type == "error" else None)
    tpage.goto(base + "/viewer.html?slide=5&x=0.5&y=0.5&z=1.5&r=0")
    wait_until(tpage, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    tpage.tap(".ph-pane-primary .openseadragon-canvas")
    tpage.screenshot(path="/tmp/viewer-tablet.png")
    tpage.click(".ph-btn[aria-label='Side panel']")
    tpage.wait_for_timeout(200)
    tpage.screenshot(path="/tmp/viewer-tablet-panel.png")
    failures.check(not terrors, f"tablet: no console errors {terrors[:3]}")
    tctx.close()


def check_upload(browser, base: str, state: devserver.DevState, tmp: Path, failures: Failures) -> None:
    ctx = browser.new_context(viewport={"width": 1000, "height": 700})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/upload.html")
    wait_until(page, "window.pathologyUploader")
    page.evaluate("window.completed = []; document.addEventListener('upload:complete', e => completed.push(e.detail))")
    big = tmp / "slide-big.svs"
    big.write_bytes(os.urandom(5 * 1024 * 1024 + 123))
    small = tmp / "slide-small.svs"
    small.write_bytes(b"small slide bytes" * 1000)
    too_big = tmp / "too-big.svs"
    too_big.write_bytes(b"x" * 1000)
    state.patch_delay = 0.25
    page.set_input_files("#upload-app input[type=file]", [str(big), str(small), str(too_big)])
    wait_until(page, "pathologyUploader.uploads.some(u => u.state === 'uploading' && u.bytesSent > 0 && u.name === 'slide-big.svs')", timeout=20000)
    page.screenshot(path="/tmp/upload-progress.png")
    big_id = page.evaluate("pathologyUploader.uploads.find(u => u.name === 'slide-big.svs').id")
    page.evaluate(f"pathologyUploader.pause({big_id})")
    page.wait_for_timeout(500)
    paused = page.evaluate(f"pathologyUploader.uploads.find(u => u.id === {big_id})")
    failures.check(paused["state"] == "paused", f"pause -> {paused['state']} at {paused['bytesSent']}")
    state.patch_delay = 0.0
    page.evaluate(f"pathologyUploader.resume({big_id})")
    wait_until(page, "pathologyUploader.uploads.every(u => ['done', 'error'].includes(u.state))", timeout=60000)
    ups = {u["name"]: u for u in page.evaluate("pathologyUploader.uploads")}
    page.screenshot(path="/tmp/upload-done.png")
    for f in (big, small):
        u = ups[f.name]
        expect = hashlib.sha256(f.read_bytes()).hexdigest()
        failures.check(u["state"] == "done" and u["sha256"] == expect, f"{f.name}: {u['state']} sha ok={u['sha256'] == expect} engine={u['hashEngine']}")
        sid = u["uploadUrl"].rsplit("/", 1)[-1]
        failures.check(bytes(state.uploads[sid].data) == f.read_bytes(), f"{f.name}: server bytes identical")
    tb = ups["too-big.svs"]
    failures.check(tb["state"] == "error" and "quota" in tb["statusText"] and tb["errorStatus"] == 413,
                   f"413 JSON message shown: {tb['statusText']!r}")
    done_events = page.evaluate("completed.map(d => d.fileName).sort()")
    failures.check(done_events == ["slide-big.svs", "slide-small.svs"], f"upload:complete events {done_events}")
    failures.check(not errors or all("413" in e or "Failed to load resource" in e for e in errors), f"upload console errors: {errors[:3]}")

    # reload mid-upload and reselect: resumes from the stored fingerprint without re-hashing
    resume_file = tmp / "slide-resume.svs"
    resume_file.write_bytes(os.urandom(4 * 1024 * 1024))
    state.patch_delay = 0.3
    page.reload()
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(resume_file)])
    wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].bytesSent >= 2*1048576", timeout=30000)
    page.reload()
    state.patch_delay = 0.0
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(resume_file)])
    wait_until(page, "pathologyUploader.uploads[0].state === 'done'", timeout=30000)
    u = page.evaluate("pathologyUploader.uploads[0]")
    sid = u["uploadUrl"].rsplit("/", 1)[-1]
    failures.check(u["resumed"] and bytes(state.uploads[sid].data) == resume_file.read_bytes(),
                   f"reload + reselect resumed={u['resumed']} and bytes identical")
    ctx.close()


def main() -> int:
    if not SLIDE.exists():
        print(f"skip: {SLIDE} missing")
        return 0
    failures = Failures()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.time()
        facts = devserver.generate_dzi(SLIDE, tmp / "dzi")
        print(f"DZI generated in {time.time() - t0:.1f}s: {facts['width']}x{facts['height']} mpp={facts['mpp']}")
        state = devserver.DevState(dzi_dir=tmp / "dzi")
        state.pages["/viewer.html"] = devserver.render_page("viewer.html", viewer_config(facts))
        state.pages["/upload.html"] = devserver.render_page("upload.html", {
            "endpoint": "/files/", "caseId": 12, "csrfToken": "test-csrf",
            "headers": {"X-CSRFToken": "test-csrf"}, "chunkSize": 1024 * 1024,
            "statusUrlTemplate": "/status/{uploadId}", "i18n": {},
        })
        server = devserver.serve(state)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                try:
                    if "upload" not in sys.argv[1:]:
                        check_viewer(browser, base, state, failures)
                    if "viewer" not in sys.argv[1:]:
                        check_upload(browser, base, state, tmp, failures)
                finally:
                    browser.close()
        finally:
            server.shutdown()
    print(f"{'FAILED: ' + str(len(failures)) if failures else 'all checks passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
