#!/usr/bin/env python3
"""Scale-out soak: two web processes and two workers on one PostgreSQL, one Redis queue and
Ceph RGW, all on loopback, with one web and one worker process SIGKILLed part-way.

Load during the soak (default 10 minutes):
  * 20 simulated viewers reading Deep Zoom tiles (screens of 12 tiles, a short pause between);
  * 3 slide uploads through the product's tus client (pathology_hub.upload_client), then their
    ingest and tiling on the workers;
  * a pathologist writing annotations (one every 2 s);
  * a pathologist signing consultation reports (draft, save, sign; one every 30 s).

Faults: at 40 % of the soak the worker process of web 1 is SIGKILLed (its gunicorn master starts
a new one); at 55 % one ``flask worker`` process is SIGKILLed and not restarted (the other one
must take over its job through the reaper).

The anchor is the same 20 viewers on the same cluster for --anchor-seconds before the soak,
with nothing else running; the soak's tile throughput and p99 are printed as ratios to it.
The run ends with a consistency check: every upload became a ready slide, every tile of every
pyramid is readable, every created annotation and signed report is there, the audit chain verifies.

Usage: .venv/bin/python bench/cluster.py [--minutes 10] [--anchor-seconds 30] [--viewers 20]
Needs the Debian packages of ``scripts/system-deps test`` (PostgreSQL, Redis, Ceph RGW).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
BIN = Path(sys.executable).parent
PASSWORD = "demo-pass-2026"
UPLOAD_CASE = "BENCH-UPLOADS"
VIEW_CASE = "BENCH-VIEW"


# ------------------------------------------------------------------ services and processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script(name: str, *args: str, env: dict | None = None) -> str:
    out = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout.strip()


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cluster_env(work: Path) -> dict:
    pg = script("pg-server", "start", env={"PG_SERVER_DB": "hub_bench_cluster"})
    import sqlalchemy
    engine = sqlalchemy.create_engine(pg)
    with engine.begin() as conn:  # a clean schema for this run
        conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE"))
        conn.execute(sqlalchemy.text("CREATE SCHEMA public"))
    engine.dispose()
    redis_url = script("redis-server", "start").rsplit("/", 1)[0] + "/7"
    import redis
    redis.Redis.from_url(redis_url).flushdb()
    script("s3-server", "start")
    storage = script("s3-server", "env").split("STORAGE_URL=", 1)[1].strip()
    storage = storage.replace("/pathology-hub?", f"/bench-cluster-{int(time.time())}?")
    return {**os.environ, "DATABASE_URL": pg, "QUEUE_URL": redis_url, "STORAGE_URL": storage,
            "INSTANCE_PATH": str(work / "instance"), "SECRET_KEY": "bench-cluster-secret",
            "LOG_LEVEL": "WARNING", "ACCESS_LOG": "/dev/null", "FLASK_APP": "wsgi",
            "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "8192"}


SETUP = r"""
import json, sys
from pathlib import Path
from sqlalchemy import select
from pathology_hub import runtime
from pathology_hub.app import create_app
from pathology_hub.migrate import upgrade
from pathology_hub.db import session_scope, SessionLocal
from pathology_hub.demo import ensure_demo_data
from pathology_hub.domain import accounts, jobs, slides
from pathology_hub.domain import consultations as svc
from pathology_hub.models import Case, Job, JobState, Slide, User
app = create_app()
upgrade(runtime.settings().database_url)
args = json.loads(sys.argv[1])
with session_scope() as s:
    ensure_demo_data(s)
with session_scope() as s:
    users = {u.username: u for u in s.scalars(select(User))}
    tech, path = users["tech"], users["pathologist"]
    def new_case(number):
        case = Case(institution_id=tech.institution_id, case_number=number, patient_pseudo_id="P-" + number,
                    clinical_history="Bench case.", specimen_type="Biopsy", created_by_id=tech.id,
                    requesting_clinician_id=users["clinician"].id)
        s.add(case); s.flush()
        return case
    view = new_case(args["view_case"])
    slides.add_local_file(s, runtime.store(), view, tech, Path(args["view_slide"]))
    new_case(args["upload_case"])
    token = accounts.create_api_token(s, tech, "bench-cluster")
with session_scope() as s:
    for _ in range(5):  # ingest, then tiling, of the viewers' slide, here in the setup process
        for job_id in list(s.scalars(select(Job.id).where(Job.state == JobState.QUEUED))):
            jobs.run(lambda: SessionLocal.session_factory(), job_id)
        s.expire_all()
with session_scope() as s:
    users = {u.username: u for u in s.scalars(select(User))}
    tech, path = users["tech"], users["pathologist"]
    view = s.scalar(select(Case).where(Case.case_number == args["view_case"]))
    slide = s.scalar(select(Slide).where(Slide.case_id == view.id))
    assert slide.status.value == "ready", slide.status
    c = svc.create(s, tech, view, {"question": "Bench: view and annotate."})
    svc.submit(s, tech, c, acknowledge_warnings=True)
    svc.assign(s, path, c, path.id); svc.accept(s, path, c)
    consultations = []
    for i in range(args["reports"]):
        case = Case(institution_id=tech.institution_id, case_number=f"BENCH-R-{i:03d}", patient_pseudo_id=f"P-R{i}",
                    clinical_history="Bench report case.", specimen_type="Biopsy", created_by_id=tech.id,
                    requesting_clinician_id=users["clinician"].id)
        s.add(case); s.flush()
        rc = svc.create(s, tech, case, {"question": "Bench: sign a report."})
        svc.submit(s, tech, rc, skip_slide_check_for_demo_seed=True)
        svc.assign(s, path, rc, path.id); svc.accept(s, path, rc)
        consultations.append(rc.id)
    s.flush()
    print(json.dumps({"token": token, "slide_id": slide.id, "view_case_id": view.id, "consultations": consultations}))
"""


# ------------------------------------------------------------------ load
@dataclass
class Stats:
    """Request outcomes of one kind, with their times, for the phase tables."""
    name: str
    lat: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    status: dict[int, int] = field(default_factory=dict)
    conn_errors: list[float] = field(default_factory=list)
    errors_5xx: list[tuple[float, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, started: float, elapsed: float, status: int, url: str = "") -> None:
        with self.lock:
            self.lat.append(elapsed)
            self.times.append(started)
            self.status[status] = self.status.get(status, 0) + 1
            if status >= 500:
                self.errors_5xx.append((started, status, url))

    def conn_error(self, at: float) -> None:
        with self.lock:
            self.conn_errors.append(at)


def login(base: str, username: str, *, retry_reads: bool = False) -> requests.Session:
    """A logged-in session; ``retry_reads`` for bookkeeping reads (a kept-alive connection that the
    server closed after 5 idle seconds is retried), never for the measured requests."""
    http = requests.Session()
    if retry_reads:
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry
        http.mount("http://", HTTPAdapter(max_retries=Retry(total=3, allowed_methods={"GET"}, backoff_factor=0.5)))
    page = http.get(f"{base}/login", timeout=30).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = http.post(f"{base}/login", data={"username": username, "password": PASSWORD, "csrf_token": csrf},
                     allow_redirects=False, timeout=30)
    if resp.status_code != 302:
        raise RuntimeError(f"login of {username} failed: {resp.status_code}")
    home = http.get(f"{base}/", timeout=30).text
    match = re.search(r'name="csrf-token" content="([^"]+)"', home)
    http.headers["X-CSRFToken"] = match.group(1) if match else ""
    return http


class Viewer(threading.Thread):
    """Screens of 12 random tiles at a random level of the deeper half, 0.2 s apart."""

    def __init__(self, base: str, slide_id: int, stats: Stats, stop_at: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.base, self.slide_id, self.stats, self.stop_at = base, slide_id, stats, stop_at
        self.rng = random.Random(seed)

    def run(self) -> None:
        http = login(self.base, "pathologist")
        dzi = http.get(f"{self.base}/api/v1/slides/{self.slide_id}", timeout=30).json()["dzi_url"]
        xml = http.get(self.base + dzi, timeout=30).text
        width = int(re.search(r'Width="(\d+)"', xml).group(1))
        height = int(re.search(r'Height="(\d+)"', xml).group(1))
        top = (max(width, height) - 1).bit_length()
        path, query = dzi.split("?", 1)
        tiles = path.replace("slide.dzi", "slide_files")
        while not self.stop_at.is_set():
            level = self.rng.randint(top - 5, top)
            scale = 1 << (top - level)
            cols, rows = -(-width // scale // 254), -(-height // scale // 254)
            for _ in range(12):
                col, row = self.rng.randrange(max(1, cols)), self.rng.randrange(max(1, rows))
                url = f"{self.base}{tiles}/{level}/{col}_{row}.jpeg?{query}"
                t0 = time.monotonic()
                try:
                    resp = http.get(url, timeout=30)
                    self.stats.add(t0, time.monotonic() - t0, resp.status_code, url)
                except requests.RequestException:
                    self.stats.conn_error(t0)
            time.sleep(0.2)


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def summarise(stats: Stats, t0: float, t1: float) -> dict:
    idx = [i for i, t in enumerate(stats.times) if t0 <= t < t1]
    lat = [stats.lat[i] for i in idx]
    return {"requests": len(idx), "rps": len(idx) / max(t1 - t0, 1e-9),
            "p50": percentile(lat, 50) * 1000, "p99": percentile(lat, 99) * 1000,
            "5xx": sum(1 for t, _, _ in stats.errors_5xx if t0 <= t < t1),
            "conn": sum(1 for t in stats.conn_errors if t0 <= t < t1)}


# ------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--anchor-seconds", type=float, default=30)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--upload-size", type=int, default=20000, help="width of each uploaded synthetic slide")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs) after the run")
    args = ap.parse_args()
    from pathology_hub.slides.synthetic import write_synthetic_slide

    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    procs: list[subprocess.Popen] = []
    try:
        env = cluster_env(work)
        print("cluster: PostgreSQL, Redis queue, Ceph RGW on loopback; work folder", work, flush=True)
        view_slide = write_synthetic_slide(work / "view.svs", 16000, 12000, mpp=0.25, seed=3)
        uploads = [write_synthetic_slide(work / f"upload-{i}.svs", args.upload_size, args.upload_size * 3 // 4,
                                         mpp=0.25, seed=20 + i) for i in range(3)]
        n_reports = int(args.minutes * 60 / 30) + 2
        out = subprocess.run([PY, "-c", SETUP, json.dumps({"view_case": VIEW_CASE, "upload_case": UPLOAD_CASE,
                                                          "view_slide": str(view_slide), "reports": n_reports})],
                             env=env, cwd=ROOT, capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(out.stderr[-4000:])
        setup = json.loads(out.stdout.strip().splitlines()[-1])

        ports = [free_port(), free_port()]
        webs = [start([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"],
                      {**env, "BIND": f"127.0.0.1:{p}", "WEB_WORKERS": "1", "WEB_THREADS": "8"},
                      work / f"web-{i}.log") for i, p in enumerate(ports)]
        workers = [start([str(BIN / "flask"), "worker", "--workers", "2"], env, work / f"worker-{i}.log")
                   for i in range(2)]
        procs += webs + workers
        bases = [f"http://127.0.0.1:{p}" for p in ports]
        for base in bases:
            wait_http(base + "/healthz")
        print(f"two web processes {ports}, two workers; {args.viewers} viewers", flush=True)

        tiles = Stats("tiles")
        # ---- anchor: the viewers alone
        stop_anchor = threading.Event()
        viewers = [Viewer(bases[i % 2], setup["slide_id"], tiles, stop_anchor, i) for i in range(args.viewers)]
        for v in viewers:
            v.start()
        time.sleep(3)  # logins and first requests
        a0 = time.monotonic()
        time.sleep(args.anchor_seconds)
        a1 = time.monotonic()
        stop_anchor.set()
        for v in viewers:
            v.join(timeout=60)

        # ---- soak
        stop_soak = threading.Event()
        soak_seconds = args.minutes * 60
        viewers = [Viewer(bases[i % 2], setup["slide_id"], tiles, stop_soak, 100 + i) for i in range(args.viewers)]
        writes = Stats("annotations")
        signs = Stats("reports")
        created_annotations: list[int] = []
        signed_reports: list[int] = []
        upload_results: list[dict] = []
        events: list[tuple[float, str]] = []

        def annotator() -> None:
            http = login(bases[0], "pathologist")
            rng = random.Random(5)
            while not stop_soak.is_set():
                x, y = rng.randrange(1000, 14000), rng.randrange(1000, 10000)
                body = {"geometry": {"type": "Polygon", "coordinates": [[[x, y], [x + 300, y], [x + 300, y + 200],
                                                                          [x, y + 200], [x, y]]]},
                        "properties": {"class": "tumour", "comment": "bench"}}
                t0 = time.monotonic()
                try:
                    resp = http.post(f"{bases[rng.randrange(2)]}/api/v1/slides/{setup['slide_id']}/annotations",
                                     json=body, timeout=30)
                    writes.add(t0, time.monotonic() - t0, resp.status_code)
                    if resp.status_code == 201:
                        created_annotations.append(resp.json()["id"] if "id" in resp.json()
                                                   else resp.json()["properties"]["id"])
                except requests.RequestException:
                    writes.conn_error(t0)
                stop_soak.wait(2)

        def signer() -> None:
            http = login(bases[1], "pathologist")
            draft = {"specimen": "Bench biopsy", "microscopic_description": "Bench.",
                     "diagnosis": "Bench diagnosis 基准诊断", "diagnosis_code": "8500/3"}
            for cid in setup["consultations"]:
                if stop_soak.is_set():
                    return
                t0 = time.monotonic()
                try:
                    base = bases[len(signed_reports) % 2]
                    rep = http.post(f"{base}/api/v1/consultations/{cid}/report", json={}, timeout=60).json()
                    rep = http.put(f"{base}/api/v1/reports/{rep['id']}",
                                   json={"revision": rep["current"]["revision"], **draft}, timeout=60).json()
                    resp = http.post(f"{base}/api/v1/reports/{rep['id']}/sign",
                                     json={"password": PASSWORD, "revision": rep["current"]["revision"]}, timeout=120)
                    signs.add(t0, time.monotonic() - t0, resp.status_code)
                    if resp.status_code == 200:
                        signed_reports.append(rep["id"])
                except (requests.RequestException, KeyError, ValueError):
                    signs.conn_error(t0)
                stop_soak.wait(30)

        def uploader() -> None:
            from pathology_hub.upload_client import HubUploader
            for i, path in enumerate(uploads):
                if i:
                    stop_soak.wait(soak_seconds / 4)
                client = HubUploader(bases[i % 2], setup["token"], work / f"upload-state-{i}.json")
                t0 = time.monotonic()
                for attempt in range(10):  # the client resumes where it stopped
                    try:
                        result = client.upload(path, UPLOAD_CASE)
                        upload_results.append({"file": path.name, "sha256": result.sha256,
                                               "seconds": time.monotonic() - t0, "attempts": attempt + 1})
                        events.append((time.monotonic(), f"upload {i + 1} sent"))
                        break
                    except Exception as exc:  # noqa: BLE001 - reported in the table
                        events.append((time.monotonic(), f"upload {i + 1} attempt {attempt + 1}: {exc}"))
                        time.sleep(3)

        background = viewers + [threading.Thread(target=f, daemon=True) for f in (annotator, signer, uploader)]
        s0 = time.monotonic()
        for t in background:
            t.start()
        kill_web_at, kill_worker_at = s0 + 0.40 * soak_seconds, s0 + 0.55 * soak_seconds
        killed = {}
        while time.monotonic() < s0 + soak_seconds:
            now = time.monotonic()
            if "web" not in killed and now >= kill_web_at:
                pid = children(webs[0].pid)[0]
                os.kill(pid, signal.SIGKILL)
                killed["web"] = now
                events.append((now, f"SIGKILL web 1 worker process {pid}"))
                print(f"  {now - s0:6.1f} s: SIGKILL web process {pid}", flush=True)
            if "worker" not in killed and now >= kill_worker_at:
                os.killpg(workers[0].pid, signal.SIGKILL)
                killed["worker"] = now
                events.append((now, f"SIGKILL flask worker {workers[0].pid}"))
                print(f"  {now - s0:6.1f} s: SIGKILL job worker {workers[0].pid} (not restarted)", flush=True)
            time.sleep(0.2)
        s1 = time.monotonic()
        stop_soak.set()
        for t in background:
            t.join(timeout=120)

        # ---- consistency
        print("soak over; waiting for every upload to become a ready slide", flush=True)
        http = login(bases[1], "tech", retry_reads=True)
        case_id = next(c["id"] for c in http.get(f"{bases[1]}/api/v1/cases", timeout=30).json()["cases"]
                       if c["case_number"] == UPLOAD_CASE)
        deadline = time.monotonic() + 900
        while True:
            slides = http.get(f"{bases[1]}/api/v1/cases/{case_id}/slides", timeout=30).json()["slides"]
            states = [s["status"] for s in slides]
            if (len(slides) >= len(upload_results) and all(s in ("ready", "rejected", "failed") for s in states)) \
                    or time.monotonic() > deadline:
                break
            time.sleep(5)
        ready_at = time.monotonic()
        check = subprocess.run([PY, "-c", CHECK, json.dumps({"case_id": case_id, "view_slide": setup["slide_id"]})],
                               env=env, cwd=ROOT, capture_output=True, text=True)
        consistency = json.loads(check.stdout.strip().splitlines()[-1]) if check.returncode == 0 else \
            {"error": check.stderr[-2000:]}
        audit = subprocess.run([str(BIN / "flask"), "audit", "verify"], env=env, cwd=ROOT,
                               capture_output=True, text=True)
        pathologist = login(bases[0], "pathologist", retry_reads=True)
        listed = pathologist.get(f"{bases[0]}/api/v1/slides/{setup['slide_id']}/annotations", timeout=60).json()
        listed_ids = {f.get("id") or f["properties"].get("id") for f in listed.get("features", [])}
        report_states = [pathologist.get(f"{bases[0]}/api/v1/reports/{rid}", timeout=30).json()["current"]["status"]
                         for rid in signed_reports]

        # ---- report
        anchor = summarise(tiles, a0, a1)
        soak = summarise(tiles, s0, s1)
        web_kill = killed.get("web", s1)
        around = summarise(tiles, web_kill - 1, web_kill + 10)
        after = summarise(tiles, web_kill + 10, s1)
        print(f"\n{'tile reads':34} {'requests':>9} {'tiles/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'5xx':>5} {'conn err':>8}")
        for name, r in (("anchor: viewers alone", anchor), ("soak, whole", soak),
                        ("soak, 1 s before to 10 s after web kill", around), ("soak, after that", after)):
            print(f"{name:34} {r['requests']:9d} {r['rps']:9.1f} {r['p50']:8.1f} {r['p99']:8.1f} {r['5xx']:5d} {r['conn']:8d}")
        print(f"\nsoak / anchor: throughput {soak['rps'] / anchor['rps']:.2f}, p99 {soak['p99'] / anchor['p99']:.2f}")
        for stats, label in ((writes, "annotation writes"), (signs, "report signings")):
            s = summarise(stats, s0, s1 + 120)
            print(f"{label}: {s['requests']} answered ({dict(sorted(stats.status.items()))}), p99 {s['p99']:.0f} ms, "
                  f"5xx {s['5xx']}, connection errors {s['conn']}")
        for t, status, url in tiles.errors_5xx[:10]:
            print(f"  5xx at {t - s0:6.1f} s: {status} {url}")
        print("\nevents:")
        for t, what in sorted(events):
            print(f"  {t - s0:7.1f} s  {what}")
        print("\nconsistency:")
        print(f"  uploads sent: {len(upload_results)} of {len(uploads)}; "
              f"slides: {consistency.get('slides')}; all ready {consistency.get('all_ready')} "
              f"({ready_at - s1:.0f} s after the soak)")
        print(f"  tiles of every pyramid readable: {consistency.get('tiles_read')} read, "
              f"{consistency.get('tiles_failed')} failed")
        print(f"  uploaded SHA-256 equal to the sources: {consistency.get('sha_ok')}")
        print(f"  annotations: {len(created_annotations)} created, "
              f"{len(set(created_annotations) & listed_ids)} listed")
        print(f"  reports: {len(signed_reports)} signed, states {sorted(set(report_states))}")
        print(f"  audit chain: exit {audit.returncode}: {audit.stdout.strip().splitlines()[-1:] or audit.stderr[-300:]}")
        ok = (consistency.get("all_ready") and consistency.get("tiles_failed") == 0 and audit.returncode == 0
              and len(upload_results) == len(uploads) and set(created_annotations) <= listed_ids
              and set(report_states) <= {"signed"} and soak["5xx"] == 0)
        print("\nRESULT:", "consistent, no 5xx" if ok else "PROBLEMS (see above)")
        return 0 if ok else 1
    finally:
        for p in procs:
            stop(p)
        if args.keep:
            print("logs kept in", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


CHECK = r"""
import json, sys, hashlib
from sqlalchemy import select
from pathology_hub import runtime
from pathology_hub.app import create_app
from pathology_hub.db import session_scope
from pathology_hub.domain import slides as slide_service
from pathology_hub.models import Slide
from pathology_hub.tiling import PyramidReader
args = json.loads(sys.argv[1])
create_app()
store = runtime.store()
read = failed = 0
with session_scope() as s:
    rows = list(s.scalars(select(Slide).where(Slide.case_id == args["case_id"])))
    rows.append(s.get(Slide, args["view_slide"]))
    states = [r.status.value for r in rows]
    sha_ok = True
    for r in rows:
        if r.status.value != "ready":
            continue
        digest = hashlib.sha256()
        for chunk in store.open_stream(r.original.storage_key):
            digest.update(chunk)
        sha_ok &= digest.hexdigest() == r.original.sha256
        reader = PyramidReader(store, slide_service.pyramid_prefix(r))
        g = reader.geometry
        for level in range(g.max_level + 1):
            cols, rows_ = g.level_tiles(level)
            for col in range(cols):
                for row in range(rows_):
                    try:
                        data = reader.tile(level, col, row)
                        read += 1
                        failed += data[:2] != b"\xff\xd8"
                    except Exception:
                        failed += 1
print(json.dumps({"slides": states, "all_ready": all(x == "ready" for x in states), "tiles_read": read,
                  "tiles_failed": failed, "sha_ok": sha_ok}))
"""


if __name__ == "__main__":
    sys.exit(main())
