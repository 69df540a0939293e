#!/usr/bin/env python3
"""Live session latency and traffic, on loopback, through the production server.

Builds a fresh instance (demo data + one synthetic slide, tiled, and a consultation on its case
in review by the demo pathologist), starts gunicorn with gunicorn.conf.py (gthread worker; one worker unless
--redis URL is given, then two workers fanning out through Redis), and opens two Chromium pages:
the pathologist presents and the requesting centre's technician follows.

The presenter pans in a circle every animation frame for --seconds (as a mouse drag would);
the viewer coalesces the view changes (viewer/src/live/coalesce.js) and sends them. Reported:
  latency       presenter's send of a view → follower's viewer moved to it (ms, median, p95),
                both pages in one browser so one clock (Date.now + performance.now offsets)
  bytes/s       view-state bytes the presenter sent per second while panning (WebSocket
                payload; frame headers add 2-8 bytes per message) and messages per second
With --shaped the follower sits behind the weak link of bench/weak_link.py (10 Mbit/s, 100 ms round
trip, 1 % loss both ways, in a network namespace): its Chromium runs inside the namespace and reaches
the server through the emulated link, as a community centre would; the presenter stays local. Both
browsers run on this machine, so their wall clocks (performance.timeOrigin + now) are one clock.
Usage: .venv/bin/python bench/live_latency.py [--seconds 10] [--redis redis://127.0.0.1:6379/5] [--sse] [--shaped]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from serving import GUNICORN, build_instance, free_port, start, stop, wait_http  # noqa: E402


SETUP = """
import sys; sys.path.insert(0, {root!r})
from pathology_hub.app import create_app
from pathology_hub.db import session_scope
from pathology_hub.models import Case, Institution, Slide, User
from pathology_hub.models.consultations import Consultation, ConsultationState
from sqlalchemy import select
app = create_app()
with session_scope() as s:
    sl = s.scalar(select(Slide))
    case = s.get(Case, sl.case_id)
    user = lambda name: s.scalar(select(User).where(User.username == name))
    dist1 = s.scalar(select(Institution).where(Institution.code == "DIST1"))
    c = Consultation(case_id=case.id, state=ConsultationState.IN_REVIEW, requesting_institution_id=case.institution_id,
                     receiving_institution_id=dist1.id, assignee_id=user("pathologist").id, question="live bench",
                     created_by_id=user("tech").id)
    s.add(c)
    s.flush()
    print(c.id)
"""

# Runs in the presenter's page: pan in a circle every frame, record when each view message left.
PAN_JS = """async (seconds) => {
    const pv = window.pathologyViewer;
    const transport = pv.live.panel.transport;
    const sent = [];
    const original = transport.send.bind(transport);
    transport.send = (m) => { if (m.type === 'view') sent.push([performance.timeOrigin + performance.now(), m.view.x, m.view.y]); return original(m); };
    const bytes0 = transport.bytesSent, msgs0 = transport.messagesSent;
    const vp = pv.viewer.viewport;
    const home = vp.getCenter(true);
    const amp = vp.getBounds(true).width * 0.2;
    const start = performance.now();
    await new Promise((resolve) => {
        const tick = (now) => {
            const t = (now - start) / 1000;
            const p = home.times(1); p.x = home.x + amp * Math.cos(t * 2); p.y = home.y + amp * Math.sin(t * 2);
            vp.panTo(p, true);
            if (now - start < seconds * 1000) requestAnimationFrame(tick); else resolve();
        };
        requestAnimationFrame(tick);
    });
    const elapsed = (performance.now() - start) / 1000;
    await new Promise((r) => setTimeout(r, 500));
    return {sent, elapsed, bytes: transport.bytesSent - bytes0, messages: transport.messagesSent - msgs0};
}"""

# Runs in the follower's page before panning starts: record when each view was applied.
WATCH_JS = """() => {
    const panel = window.pathologyViewer.live.panel;
    window.__applied = [];
    const original = panel._apply.bind(panel);
    panel._apply = async (view) => { const r = await original(view); window.__applied.push([performance.timeOrigin + performance.now(), view.x, view.y]); return r; };
}"""


def login(ctx, base: str, username: str):
    page = ctx.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo-pass-2026")
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{base}/")
    return page


def wait(page, expr: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expr})"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {expr}")
        time.sleep(0.05)


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update"]


def run(base: str, case_id: int, seconds: float, sse: bool, *, follower_base: str | None = None,
        follower_chromium: str | None = None) -> dict:
    """Present from a local browser, follow from ``follower_chromium`` (default: the same browser)
    at ``follower_base`` (default: ``base``)."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        remote = (pw.chromium.launch(executable_path=follower_chromium, headless=True, args=CHROMIUM_ARGS)
                  if follower_chromium else browser)
        pages = {}
        for name, b, url in (("pathologist", browser, base), ("tech", remote, follower_base or base)):
            ctx = b.new_context(viewport={"width": 1280, "height": 860})
            page = login(ctx, url, name)
            page.goto(f"{url}/cases/{case_id}/viewer")
            wait(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded", 120)
            pages[name] = page
        presenter, follower = pages["pathologist"], pages["tech"]
        presenter.evaluate("pathologyViewer.live.join()")
        wait(presenter, "pathologyViewer.live.state().isPresenter")
        follower.evaluate(f"pathologyViewer.live.join({{sse: {str(sse).lower()}}})")
        wait(follower, "pathologyViewer.live.state().status === 'open' && pathologyViewer.live.state().following")
        follower.evaluate(WATCH_JS)
        result = presenter.evaluate(PAN_JS, seconds)
        applied = follower.evaluate("window.__applied")
        debug = follower.evaluate("pathologyViewer.live.state()")
        if remote is not browser:
            remote.close()
        browser.close()
    by_pos = {}
    for t, x, y in applied:
        by_pos.setdefault((round(x, 5), round(y, 5)), t)   # the server keeps 6 decimals of the client's 7 digits
    lat = [by_pos[(round(x, 5), round(y, 5))] - t for t, x, y in result["sent"] if (round(x, 5), round(y, 5)) in by_pos]
    lat.sort()
    if not lat:
        print("no view applied on the follower:", json.dumps(debug)[:300], applied[:3], result["sent"][:3], file=sys.stderr)
    return {
        "views_sent": len(result["sent"]), "views_applied": len(lat),
        "latency_ms_median": round(statistics.median(lat), 1) if lat else None,
        "latency_ms_p95": round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        "bytes_per_s": round(result["bytes"] / result["elapsed"], 1),
        "messages_per_s": round(result["messages"] / result["elapsed"], 1),
        "seconds": round(result["elapsed"], 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--redis", default="", help="redis:// URL: two gunicorn workers fan out through Redis")
    ap.add_argument("--sse", action="store_true", help="the follower uses the SSE + POST fallback")
    ap.add_argument("--shaped", action="store_true",
                    help="the follower is behind an emulated 10 Mbit/s, 100 ms, 1 %% loss link (needs root)")
    args = ap.parse_args()
    link = contextlib.nullcontext(None)
    if args.shaped:
        from weak_link import check_tools, shaped_link
        check_tools()
        link = shaped_link(loss_both_ways=True)
    with link as shaped:
        return _measure(args, shaped)


def _measure(args: argparse.Namespace, shaped: tuple | None) -> int:
    import subprocess

    from serving import PY
    from pathology_hub.slides.synthetic import write_synthetic_slide
    with tempfile.TemporaryDirectory(prefix="live-bench-") as tmp:
        work = Path(tmp)
        slide = write_synthetic_slide(work / "bench.svs", 8000, 6000, mpp=0.25, seed=5)
        info = build_instance(work, "instance", f"file://{work / 'objects'}", slide)
        env = dict(info["env"])
        out = subprocess.run([PY, "-c", SETUP.format(root=str(ROOT))], env=env, capture_output=True, text=True, cwd=ROOT)
        if out.returncode or out.stdout.strip().splitlines()[-1] == "none":
            raise RuntimeError(out.stderr[-3000:] or "no consultation on the bench slide's case")
        port = free_port()
        env.update({"BIND": f"{'0.0.0.0' if shaped else '127.0.0.1'}:{port}", "ACCESS_LOG": "/dev/null",
                    "WEB_WORKERS": "2" if args.redis else "1", "LIVE_REDIS_URL": args.redis})
        proc = start([GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"], env, work / "gunicorn.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(base + "/login")
            follower_base = follower_chromium = None
            if shaped:
                ns, host_ip, _stats = shaped
                follower_base = f"http://{host_ip}:{port}"
                follower_chromium = str(work / "chromium-in-namespace")
                Path(follower_chromium).write_text(f'#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium "$@"\n')
                Path(follower_chromium).chmod(0o755)
            result = run(base, info["case_id"], args.seconds, args.sse, follower_base=follower_base,
                         follower_chromium=follower_chromium)
        finally:
            stop(proc)
    result.update({"transport": "sse+post" if args.sse else "websocket",
                   "fanout": "redis, 2 workers" if args.redis else "in-process, 1 worker",
                   "follower_link": "10 Mbit/s, 100 ms RTT, 1 % loss (emulated)" if shaped else "loopback"})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
