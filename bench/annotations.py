#!/usr/bin/env python3
"""Annotation speed in the browser, all in one run on the same slide.

Builds a fresh instance (demo data + one synthetic slide, tiled), puts N×N polygons of
--vertices vertices on it through the domain layer (one bulk import, as a QuPath file
would), starts the app under gunicorn with its production settings, and opens the viewer
in headless Debian Chromium (software rendering, no GPU) as the pathologist:

  open → interactive   navigation start → annotations fetched, parsed, indexed and drawn
                       (3 loads, the first right after the server started, then a 4th
                       after one annotation was edited in the database)
                       (window.pathologyViewer.annotations.state().primary.readyAt), plus
                       the delay of the next animation frame (main thread free again)
  panning fps          requestAnimationFrame callbacks per second while the view is panned
                       every frame at full-slide zoom, with annotations shown, and the same
                       panning with annotations hidden (anchor: the viewer's own cost)
  list endpoint        GET …/annotations?bbox=… for a viewport (≈ 1 % of the slide) and the
                       whole slide, median of 5, over HTTP from Python

Usage: .venv/bin/python bench/annotations.py [--grid 100] [--vertices 100] [--seconds 5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from serving import GUNICORN, PY, free_port, start, stop, wait_http  # noqa: E402

CASE_NUMBER = "DEMO-C-002"   # demo consultation in review, assigned to the demo pathologist


def build_instance(work: Path, slide_path: Path, grid: int, vertices: int) -> dict:
    """Demo data, the slide on a case the pathologist reviews, tiled; then grid² polygons on it."""
    inst = work / "instance"
    env = {**os.environ, "INSTANCE_PATH": str(inst), "STORAGE_URL": f"file://{work / 'objects'}",
           "DATABASE_URL": f"sqlite:///{inst / 'db.sqlite'}", "QUEUE_URL": f"sqlite:///{inst / 'q.db'}",
           "SECRET_KEY": "bench-secret", "LOG_LEVEL": "WARNING"}
    code = f"""
import sys, json, math, time; sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from pathology_hub import runtime
from pathology_hub.app import create_app
from pathology_hub.migrate import upgrade
from pathology_hub.db import session_scope, SessionLocal
from pathology_hub.demo import ensure_demo_data, ensure_demo_consultations
from pathology_hub.domain import jobs, slides, policy
from pathology_hub.domain import annotations as service
from pathology_hub.models import Case, User, Job, JobState, Slide
from sqlalchemy import select
app = create_app()
upgrade(runtime.settings().database_url)
with session_scope() as s:
    ensure_demo_data(s)
with session_scope() as s:
    ensure_demo_consultations(s)
with session_scope() as s:
    case = s.scalar(select(Case).where(Case.case_number == {CASE_NUMBER!r}))
    tech = s.scalar(select(User).where(User.username == 'tech'))
    slides.add_local_file(s, runtime.store(), case, tech, Path({str(slide_path)!r}))
with session_scope() as s:
    for _ in range(5):
        for job_id in list(s.scalars(select(Job.id).where(Job.state == JobState.QUEUED))):
            jobs.run(lambda: SessionLocal.session_factory(), job_id)
        s.expire_all()
    sl = s.scalar(select(Slide).order_by(Slide.id.desc()))
    user = s.scalar(select(User).where(User.username == 'pathologist'))
    assert policy.can(user, 'annotation.create', sl), 'the demo pathologist cannot annotate the bench slide'
    frame = service.SlideFrame.of(sl)
    grid, n = {grid}, {vertices}
    cw, ch = frame.width / grid, frame.height / grid
    r = 0.4 * min(cw, ch)
    feats = []
    for i in range(grid):
        for j in range(grid):
            cx, cy = (i + 0.5) * cw, (j + 0.5) * ch
            ring = [[round(cx + r * math.cos(2 * math.pi * k / (n - 1)), 2),
                     round(cy + r * math.sin(2 * math.pi * k / (n - 1)), 2)] for k in range(n - 1)]
            ring.append(ring[0])
            cls = ('tumour', 'stroma', 'necrosis', 'inflammation')[(i + j) % 4]
            feats.append({{"type": "Feature", "geometry": {{"type": "Polygon", "coordinates": [ring]}},
                          "properties": {{"objectType": "annotation", "classification": {{"name": cls}}}}}})
    t = time.perf_counter()
    res = service.import_features(s, user, sl, feats)
    print(json.dumps({{"slide_id": sl.id, "case_id": sl.case_id, "status": sl.status.value,
                      "imported": res.imported, "import_s": round(time.perf_counter() - t, 2),
                      "width": frame.width, "height": frame.height, "mpp": frame.mpp_x}}))
"""
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["status"] == "ready", info
    return {"env": env, **info}


PAN_JS = """async ([seconds, visible]) => {
    const pv = window.pathologyViewer;
    pv.annotations.controller.setVisible(visible);
    const vp = pv.viewer.viewport;
    vp.goHome(true);
    await new Promise((r) => setTimeout(r, 500));
    const home = vp.getCenter(true);
    const bounds = vp.getBounds(true);
    const amp = bounds.width * 0.25;   // ±25 % of the view: leaves the cached margin, so re-renders are included
    const layer = pv.annotations.layer();
    const renders0 = layer.stats.renders;
    let frames = 0, worst = 0, last = performance.now();
    const start = last;
    await new Promise((resolve) => {
        const tick = (now) => {
            frames += 1;
            worst = Math.max(worst, now - last);
            last = now;
            const t = (now - start) / 1000;
            // Circle around the home centre: every frame moves the view (a pan, no zoom).
            const offset = home.times(0);
            offset.x = amp * Math.cos(t * 2);
            offset.y = amp * Math.sin(t * 2);
            vp.panTo(home.plus(offset), true);
            if (now - start < seconds * 1000) requestAnimationFrame(tick); else resolve();
        };
        requestAnimationFrame(tick);
    });
    const elapsed = (performance.now() - start) / 1000;
    pv.annotations.controller.setVisible(true);
    return {fps: frames / elapsed, worstFrameMs: worst, frames,
            overlayRenders: layer.stats.renders - renders0, lastRenderMs: layer.lastRenderMs,
            drawnShapes: layer.stats.drawnShapes};
}"""


def _edit_one(info: dict) -> None:
    """Another user's edit of one annotation, written straight to the database (as another
    web process would): the version moves, so that row's cached text is no longer used."""
    import sqlite3
    db = sqlite3.connect(info["env"]["DATABASE_URL"].removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE annotations SET comment = 'edited', version = version + 1, list_text = NULL "
                   "WHERE id = (SELECT MIN(id) FROM annotations WHERE slide_id = ?)", (info["slide_id"],))
    db.close()


def browser_run(base: str, info: dict, seconds: float, shot: Path) -> dict:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                           "--disable-background-networking", "--disable-component-update"])
        ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
        # Main-thread tasks over 50 ms from navigation on (is the page responsive while annotations load?).
        ctx.add_init_script("""window.__longTasks = [];
            try { new PerformanceObserver((l) => { for (const e of l.getEntries())
                window.__longTasks.push([Math.round(e.startTime), Math.round(e.duration)]); })
                .observe({type: 'longtask', buffered: true}); } catch (e) {}""")
        page = ctx.new_page()
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "pathologist")
        page.fill("input[name=password]", "demo-pass-2026")
        page.click("[data-testid=login-submit]")
        page.wait_for_url(f"{base}/")
        results = []
        for attempt in range(4):
            if attempt == 3:
                _edit_one(info)
            page.goto(f"{base}/cases/{info['case_id']}/viewer?slide={info['slide_id']}")
            deadline = time.monotonic() + 60
            while not page.evaluate("() => Boolean(window.pathologyViewer && "
                                    "pathologyViewer.annotations.state().primary.ready)"):
                if time.monotonic() > deadline:
                    raise RuntimeError("annotations never became ready")
                time.sleep(0.02)
            timing = page.evaluate("""async () => {
                const st = pathologyViewer.annotations.state().primary;
                const before = performance.now();
                await new Promise((r) => requestAnimationFrame(() => r()));
                const nav = performance.getEntriesByType('navigation')[0];
                const res = performance.getEntriesByType('resource').find((e) => /annotations$/.test(e.name));
                const long = (window.__longTasks || []).filter((t) => t[0] <= st.readyAt);
                return {readyAt: st.readyAt, count: st.count, nextFrameMs: performance.now() - before,
                        firstDrawn: st.timings && st.timings.chunks.length ? Math.min(...st.timings.chunks.map((c) => c.done)) : null,
                        longestTask: long.length ? Math.max(...long.map((t) => t[1])) : 0,
                        longTasksAfterDom: long.filter((t) => t[0] > (performance.getEntriesByType('navigation')[0] || {}).domContentLoadedEventEnd).map((t) => t[1]),
                        domContentLoaded: nav ? nav.domContentLoadedEventEnd : null,
                        strips: st.timings ? st.timings.chunks.map((c) => c.worker && [c.worker.sent, c.worker.headers, c.worker.body, c.worker.parsed, c.worker.decoded]) : [],
                        firstRenderMs: st.stats.lastRenderMs,
                        requestedAt: st.timings ? st.timings.requested : null,
                        chunks: st.timings ? st.timings.chunks.map((c) => [Math.round(c.arrived), Math.round(c.done)]) : []};
            }""")
            results.append(timing)
        after_edit = results.pop()
        best = min(results, key=lambda r: r["readyAt"])
        pan_on = page.evaluate(PAN_JS, [seconds, True])
        pan_off = page.evaluate(PAN_JS, [seconds, False])
        pan_on2 = page.evaluate(PAN_JS, [seconds, True])
        page.screenshot(path=str(shot))
        browser.close()
    return {"open": results, "after_edit": after_edit, "best": best, "pan_on": pan_on, "pan_off": pan_off, "pan_on2": pan_on2}


def list_latency(base: str, info: dict) -> dict:
    http = requests.Session()
    page = http.get(f"{base}/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    http.post(f"{base}/login", data={"username": "pathologist", "password": "demo-pass-2026", "csrf_token": csrf})
    api = f"{base}/api/v1/slides/{info['slide_id']}/annotations"
    w, h = info["width"], info["height"]

    def timed(url: str) -> tuple[float, int, float]:
        times, count = [], 0
        for _ in range(5):
            t = time.perf_counter()
            resp = http.get(url)
            times.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, resp.text[:300]
            count = resp.content.count(b'"type":"Feature"')
        return statistics.median(times), count, times[0]
    # The first request after the server starts pays for serialising the slide's annotations
    # (they are then cached per worker process until they change): reported separately.
    vp_ms, vp_n, vp_first = timed(f"{api}?bbox={int(w * 0.45)},{int(h * 0.45)},{int(w * 0.55)},{int(h * 0.55)}")
    full_ms, full_n, full_first = timed(api)
    return {"viewport_ms": vp_ms, "viewport_features": vp_n, "full_ms": full_ms, "full_features": full_n,
            "viewport_first_ms": vp_first, "full_first_ms": full_first}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=100, help="grid × grid polygons (default 100 → 10,000)")
    ap.add_argument("--vertices", type=int, default=100)
    ap.add_argument("--width", type=int, default=12000)
    ap.add_argument("--height", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--keep", action="store_true", help="keep the work directory (instance, slide, screenshot)")
    args = ap.parse_args()
    from pathology_hub.slides.synthetic import write_synthetic_slide

    work = Path(tempfile.mkdtemp(prefix="bench-annotations-"))
    t = time.perf_counter()
    slide_path = write_synthetic_slide(work / "bench.svs", args.width, args.height, mpp=0.25, seed=5)
    info = build_instance(work, slide_path, args.grid, args.vertices)
    print(f"slide {args.width} × {args.height} px (mpp {info['mpp']}), {info['imported']} polygons × "
          f"{args.vertices} vertices imported in {info['import_s']} s; set-up {time.perf_counter() - t:.0f} s")
    port = free_port()
    env = {**info["env"], "BIND": f"127.0.0.1:{port}", "ACCESS_LOG": "/dev/null"}
    web = start([GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env, work / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        lat = list_latency(base, info)
        run = browser_run(base, info, args.seconds, work / "viewer.png")
    finally:
        stop(web)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    best = run["best"]
    print("\nopen → interactive (3 page loads, navigation start → all annotations drawn):")
    for r in run["open"]:
        print(f"  first strip drawn at {r['firstDrawn']:.0f} ms, all drawn at {r['readyAt']:.0f} ms; main-thread tasks "
              f"> 50 ms after DOMContentLoaded until then: {r['longTasksAfterDom']} ms")
        print(f"  ready at {r['readyAt']:.0f} ms (DOMContentLoaded {r['domContentLoaded']:.0f} ms, requests sent at "
              f"{r['requestedAt']:.0f} ms, strips [sent, headers, body, parsed in worker, decoded] {r['strips']}, [parsed, drawn] {r['chunks']}, last overlay render "
              f"{r['firstRenderMs']:.0f} ms, next frame after {r['nextFrameMs']:.0f} ms), {r['count']} shapes")
    median = statistics.median(r["readyAt"] for r in run["open"])
    print(f"  median {median:.0f} ms, best {best['readyAt']:.0f} ms, worst {max(r['readyAt'] for r in run['open']):.0f} ms"
          f"   target < 2000 ms (judged on the median)   {'OK' if median < 2000 else 'MISSED'}")
    print(f"  4th load, after one annotation was edited elsewhere: ready at {run['after_edit']['readyAt']:.0f} ms")
    print(f"\npanning at full-slide zoom, {args.seconds:g} s each (requestAnimationFrame callbacks per second):")
    for label, key in (("annotations shown", "pan_on"), ("annotations hidden (anchor)", "pan_off"),
                       ("annotations shown, again", "pan_on2")):
        r = run[key]
        print(f"  {label:30s} {r['fps']:5.1f} fps  worst frame {r['worstFrameMs']:.0f} ms  "
              f"overlay re-renders {r['overlayRenders']} (last {r['lastRenderMs']:.0f} ms, "
              f"{r['drawnShapes']} shapes drawn)")
    on = min(run["pan_on"]["fps"], run["pan_on2"]["fps"])
    print(f"  ratio shown/hidden {on / run['pan_off']['fps']:.2f}   target ≥ 30 fps   "
          f"{'OK' if on >= 30 else 'MISSED'}")
    print("\nlist endpoint (gunicorn, production settings, median of 5):")
    print(f"  viewport bbox (1 % of the slide): {lat['viewport_ms']:.0f} ms for {lat['viewport_features']} "
          f"features   target < 200 ms   {'OK' if lat['viewport_ms'] < 200 else 'MISSED'}")
    print(f"  whole slide: {lat['full_ms']:.0f} ms for {lat['full_features']} features")
    print(f"  first requests after the server started (serialisation cache cold in that worker): "
          f"viewport {lat['viewport_first_ms']:.0f} ms, whole slide {lat['full_first_ms']:.0f} ms")
    if args.keep:
        print(f"\nwork directory kept: {work} (screenshot viewer.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
