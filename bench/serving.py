#!/usr/bin/env python3
"""Tile serving speed, all in one run on the same slide and tiles.

  (anchor) nginx serving the pyramid's tiles as static files
  (naive)  openslide DeepZoomGenerator per request under gunicorn (2 sync workers)
  (ours)   this application's authenticated tile endpoint under gunicorn with its
           production settings (gunicorn.conf.py), local-folder and S3 backends; the S3
           backend once as deployed (pack cache on, filled during the run) and once
           with TILE_CACHE_MB=0 (every tile a ranged GET to the gateway)

Each is driven by wrk (Debian's package) with random tiles of the deepest level at
32 connections for --seconds (default 30). Prints requests/s, p50/p99 latency and the
ratio of each to nginx, then the time from opening the viewer page in Chromium (fresh
profile, local backend) until the first screen is drawn.
Usage: .venv/bin/python bench/serving.py [--seconds 30] [--no-s3] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def wrk(url_base: str, paths: list[str], seconds: int, headers: dict[str, str], work: Path) -> dict:
    lua = work / f"random-{abs(hash(url_base))}.lua"
    hdr = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    items = ",\n".join(f'"{p}"' for p in paths)
    lua.write_text(f"{hdr}local paths = {{\n{items}\n}}\nmath.randomseed(42)\n"
                   "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n")
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "-s", str(lua), url_base],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def lat(pct: str) -> float:
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": lat("50"), "p99": lat("99"), "errors": int(non2xx.group(1)) if non2xx else 0}


def build_instance(work: Path, name: str, storage_url: str, slide_path: Path) -> dict:
    """A fresh instance with the demo consortium and one tiled slide; returns what the server needs."""
    inst = work / name
    env = {**os.environ, "INSTANCE_PATH": str(inst), "STORAGE_URL": storage_url,
           "DATABASE_URL": f"sqlite:///{inst / 'db.sqlite'}", "QUEUE_URL": f"sqlite:///{inst / 'q.db'}",
           "SECRET_KEY": "bench-secret", "LOG_LEVEL": "WARNING"}
    code = f"""
import sys; sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from pathology_hub import runtime
from pathology_hub.app import create_app
from pathology_hub.migrate import upgrade
from pathology_hub.db import session_scope, SessionLocal
from pathology_hub.demo import ensure_demo_data
from pathology_hub.domain import jobs, slides
from pathology_hub.models import Case, User, Job, JobState, Slide
from sqlalchemy import select
app = create_app()
upgrade(runtime.settings().database_url)
with session_scope() as s:
    ensure_demo_data(s)
with session_scope() as s:
    case = s.scalar(select(Case)); tech = s.scalar(select(User).where(User.username == 'tech'))
    slides.add_local_file(s, runtime.store(), case, tech, Path({str(slide_path)!r}))
with session_scope() as s:
    for _ in range(5):
        for job_id in list(s.scalars(select(Job.id).where(Job.state == JobState.QUEUED))):
            jobs.run(lambda: SessionLocal.session_factory(), job_id)
        s.expire_all()
    sl = s.scalar(select(Slide)); print(sl.id, sl.uid, sl.status.value, sl.case_id)
"""
    out = subprocess.run([PY, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    slide_id, uid, status, case_id = out.stdout.strip().splitlines()[-1].split()
    assert status == "ready", status
    return {"env": env, "slide_id": int(slide_id), "uid": uid, "case_id": int(case_id)}


def first_screen(base: str, case_id: int, runs: int = 5) -> list[float]:
    """Seconds from opening the viewer page (fresh browser profile) until the first screen is drawn."""
    from playwright.sync_api import sync_playwright
    times = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            for _ in range(runs):
                context = browser.new_context()  # empty cache: nothing from the previous run
                page = context.new_page()
                page.goto(f"{base}/login")
                page.fill("input[name=username]", "tech")
                page.fill("input[name=password]", "demo-pass-2026")
                page.click("[data-testid=login-submit]")
                page.wait_for_url(f"{base}/")
                started = time.perf_counter()
                page.goto(f"{base}/cases/{case_id}/viewer", wait_until="commit")
                while not page.evaluate("window.pathologyViewer !== undefined && "
                                        "pathologyViewer.drawState().primary.fullyLoaded === true && "
                                        "pathologyViewer.drawState().primary.canvas.drawn > 0"):
                    if time.perf_counter() - started > 30:
                        raise RuntimeError("the viewer did not draw its first screen within 30 s")
                    time.sleep(0.01)
                times.append(time.perf_counter() - started)
                context.close()
        finally:
            browser.close()
    return times


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--width", type=int, default=16000)
    ap.add_argument("--height", type=int, default=12000)
    ap.add_argument("--no-s3", action="store_true")
    ap.add_argument("--no-browser", action="store_true", help="skip the first-screen measurement")
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is missing: apt-get install {tool}")
    from openslide.deepzoom import DeepZoomGenerator
    import openslide

    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.tiling import PyramidReader
    from storage import open_store

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    work.chmod(0o755)  # nginx workers run as www-data and must read the static tiles
    results: list[tuple[str, dict]] = []
    screens: list[float] = []
    try:
        slide_path = write_synthetic_slide(work / "bench.svs", args.width, args.height, mpp=0.25, seed=9)
        dz = DeepZoomGenerator(openslide.OpenSlide(str(slide_path)), tile_size=254, overlap=1, limit_bounds=True)
        level = dz.level_count - 1
        cols, rows = dz.level_tiles[level]
        rng = random.Random(1)
        tiles = [(rng.randrange(cols), rng.randrange(rows)) for _ in range(2000)]
        print(f"slide {args.width} x {args.height}, deepest level {level}: {cols} x {rows} tiles; "
              f"{len(tiles)} random tiles, wrk -c32 -d{args.seconds}s")

        backends = [("local", f"file://{work / 'objects'}")]
        if not args.no_s3:
            s3 = subprocess.run([str(ROOT / "scripts" / "s3-server"), "start"], capture_output=True, text=True)
            env_line = subprocess.run([str(ROOT / "scripts" / "s3-server"), "env"], capture_output=True,
                                      text=True).stdout
            if s3.returncode == 0 and "STORAGE_URL=" in env_line:
                url = env_line.split("STORAGE_URL=", 1)[1].strip().replace("pathology-hub?", "bench-serving?")
                backends.append(("s3", url))
            else:
                print("S3 server could not be started; S3 row skipped")
        instances = {name: build_instance(work, name, url, slide_path) for name, url in backends}

        # (anchor) nginx: the same tiles as static files, extracted from our stored pyramid.
        local = instances["local"]
        reader = PyramidReader(open_store(backends[0][1]), f"pyramids/{local['uid']}/v0")
        static = work / "static" / "slide_files" / str(level)
        static.mkdir(parents=True)
        for c, r in set(tiles):
            (static / f"{c}_{r}.jpeg").write_bytes(reader.tile(level, c, r))
        port = free_port()
        conf = work / "nginx.conf"
        conf.write_text(f"""worker_processes 2; pid {work}/nginx.pid; error_log {work}/nginx-error.log; daemon off;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; tcp_nopush on; types {{ image/jpeg jpeg; }}
  server {{ listen 127.0.0.1:{port}; root {work / 'static'}; }} }}""")
        nginx = start(["nginx", "-c", str(conf), "-p", str(work)], os.environ.copy(), work / "nginx.log")
        wait_http(f"http://127.0.0.1:{port}/")
        paths = [f"/slide_files/{level}/{c}_{r}.jpeg" for c, r in tiles]
        results.append(("nginx static files (anchor)", wrk(f"http://127.0.0.1:{port}", paths, args.seconds, {}, work)))
        stop(nginx)

        # (naive) DeepZoomGenerator per request, 2 sync gunicorn workers.
        port = free_port()
        naive = start([GUNICORN, "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT / "bench"),
                       "_dz_server:app"], {**os.environ, "BENCH_SLIDE": str(slide_path)}, work / "naive.log")
        wait_http(f"http://127.0.0.1:{port}/slide_files/{level}/0_0.jpeg")
        results.append(("DeepZoomGenerator on the fly, 2 workers",
                        wrk(f"http://127.0.0.1:{port}", paths, args.seconds, {}, work)))
        stop(naive)

        # (ours) authenticated endpoint, production gunicorn settings.
        runs = [(name, name, {}) for name, _url in backends]
        if "s3" in instances:
            runs.append(("s3", "s3 backend without pack cache", {"TILE_CACHE_MB": "0"}))
        for name, label, extra_env in runs:
            inst = instances[name]
            port = free_port()
            env = {**inst["env"], "BIND": f"127.0.0.1:{port}", "ACCESS_LOG": "/dev/null", **extra_env}
            web = start([GUNICORN, "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"], env, work / f"web-{name}.log")
            wait_http(f"http://127.0.0.1:{port}/healthz")
            http = requests.Session()
            page = http.get(f"http://127.0.0.1:{port}/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            http.post(f"http://127.0.0.1:{port}/login", data={"username": "tech", "password": "demo-pass-2026",
                                                              "csrf_token": csrf})
            dzi = http.get(f"http://127.0.0.1:{port}/api/v1/slides/{inst['slide_id']}").json()["dzi_url"]
            base, token = dzi.split("?")
            tile_base = base.replace("slide.dzi", "slide_files")
            our_paths = [f"{tile_base}/{level}/{c}_{r}.jpeg?{token}" for c, r in tiles]
            check = http.get(f"http://127.0.0.1:{port}{our_paths[0]}")
            assert check.status_code == 200 and check.content[:2] == b"\xff\xd8", check.status_code
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            results.append((f"this app, authenticated, {label}" + (" backend" if label == name else ""),
                            wrk(f"http://127.0.0.1:{port}", our_paths, args.seconds, {"Cookie": cookie}, work)))
            if name == "local" and not args.no_browser:
                screens = first_screen(f"http://127.0.0.1:{port}", inst["case_id"])
            stop(web)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    anchor = results[0][1]["rps"]
    print(f"\n{'server':45} {'tiles/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs nginx':>9}")
    for name, r in results:
        print(f"{name:45} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['errors']:8d} {r['rps'] / anchor:9.3f}")
    if screens:
        ordered = sorted(screens)
        print(f"\nfirst screen of the viewer (local backend, fresh browser profile, {len(screens)} runs): "
              f"median {ordered[len(ordered) // 2]:.2f} s, max {ordered[-1]:.2f} s (target < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
