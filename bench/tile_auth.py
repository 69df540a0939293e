#!/usr/bin/env python3
"""Cost of authorising a tile on the WSGI fast path, in process (no network, no gunicorn).

Builds a small instance (SQLite, local folder, one synthetic slide tiled), logs in, then
calls the application's WSGI callable directly with a tile request carrying the session
cookie and the tile token, over and over on a few threads, and prints tiles/s and the mean
microseconds per tile (wall, and CPU time of
the process, which a shared machine disturbs less). The tile bytes come from the pack cache, so what is measured is the
fast path itself: cookie and token checks (memoised) and the session liveness check.
Usage: .venv/bin/python bench/tile_auth.py [--seconds 5] [--threads 4]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()

    from pathology_hub.app import create_app
    from pathology_hub.config import Settings
    from pathology_hub.demo import ensure_demo_data
    from pathology_hub.db import SessionLocal
    from pathology_hub.migrate import upgrade
    from pathology_hub.queue import huey
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from tests.conftest import Client
    from tests.fixtures.uploads import tus_upload
    from sqlalchemy import select
    from pathology_hub.models import Case

    work = Path(tempfile.mkdtemp(prefix="bench-tile-auth-"))
    instance = work / "instance"
    instance.mkdir()
    url = f"sqlite:///{work / 'hub.db'}"
    upgrade(url)
    settings = Settings(instance_path=instance, database_url=url, storage_url=f"file://{instance / 'objects'}",
                        queue_url=f"sqlite:///{instance / 'queue.db'}", secret_key="bench-secret",
                        argon2_time_cost=1, argon2_memory_kib=8192)
    app = create_app(settings)
    huey.immediate = True
    db = SessionLocal()
    ensure_demo_data(db)
    db.commit()
    case_id = db.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))
    SessionLocal.remove()
    slide = write_synthetic_slide(work / "s.svs", 2000, 1500, mpp=0.25, seed=3)
    tech = Client(app, "tech")
    assert tus_upload(tech, slide, case_id).status_code == 201
    info = tech.get(f"/api/v1/cases/{case_id}/slides").json["slides"][0]
    path, query = info["dzi_url"].replace("slide.dzi", "slide_files/11/1_1.jpeg").split("?", 1)
    cookie = "; ".join(f"{c.key}={c.value}" for c in tech.http._cookies.values())
    assert tech.get(f"{path}?{query}").status_code == 200

    wsgi = app.wsgi_app
    statuses: list[str] = []

    def environ() -> dict:
        return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query, "HTTP_COOKIE": cookie,
                "SERVER_NAME": "localhost", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr}

    def start_response(status, headers):
        statuses.append(status)

    counts = [0] * args.threads
    stop = time.monotonic() + args.seconds

    def run(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            for _ in range(100):
                b"".join(wsgi(environ(), start_response))
            n += 100
        counts[i] = n

    threads = [threading.Thread(target=run, args=(i,)) for i in range(args.threads)]
    began = time.monotonic()
    cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    cpu = time.process_time() - cpu
    total = sum(counts)
    assert set(statuses) == {"200 OK"}, set(statuses)
    print(f"{total} tiles in {elapsed:.1f} s on {args.threads} threads: {total / elapsed:,.0f} tiles/s, "
          f"{elapsed * 1e6 / total * args.threads:.1f} us per tile per thread, {cpu * 1e6 / total:.1f} us CPU per tile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
