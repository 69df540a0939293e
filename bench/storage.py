"""Object store throughput, local folder vs Ceph RGW, with in-run anchors.

    .venv/bin/python bench/storage.py [--objects 2000] [--big-mb 1024]

Rates (objects/s, 8 KB objects) are compared with the local backend at one
thread; MB/s for the big object with a plain ``shutil.copyfile`` of the same
file, both measured in the same run, so the ratios survive a change of machine
better than the absolute figures. Starts ``scripts/s3-server`` if needed.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from storage import ObjectStore, open_store  # noqa: E402

MB = 1024 * 1024


def s3_store() -> ObjectStore:
    subprocess.run([str(REPO / "scripts" / "s3-server"), "start"], check=True)
    env = subprocess.run([str(REPO / "scripts" / "s3-server"), "env"], check=True, capture_output=True,
                         text=True).stdout
    url = next(line.split("=", 1)[1] for line in env.splitlines() if line.startswith("STORAGE_URL="))
    return open_store(urlsplit(url)._replace(path=f"/bench-{uuid.uuid4().hex[:12]}").geturl())


def rate(store: ObjectStore, threads: int, count: int, payload: bytes) -> tuple[float, float]:
    keys = [f"bench/t{threads}/{i:06d}" for i in range(count)]
    with cf.ThreadPoolExecutor(threads) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda k: store.put_bytes(k, payload), keys))
        t1 = time.perf_counter()
        got = list(pool.map(store.get_bytes, keys))
        t2 = time.perf_counter()
    assert all(g == payload for g in got)
    store.delete_prefix(f"bench/t{threads}/")
    return count / (t1 - t0), count / (t2 - t1)


def big(store: ObjectStore, path: Path, size: int) -> dict[str, float]:
    out = {}
    t0 = time.perf_counter()
    store.put_file("bench/big-file", str(path))
    out["put_file"] = size / MB / (time.perf_counter() - t0)
    with open(path, "rb") as fh:
        t0 = time.perf_counter()
        store.put_stream("bench/big-stream", fh, length=None)
        out["put_stream (length=None)"] = size / MB / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = sum(len(chunk) for chunk in store.open_stream("bench/big-file"))
    out["get (open_stream)"] = size / MB / (time.perf_counter() - t0)
    assert n == size
    store.delete_prefix("bench/")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--big-mb", type=int, default=1024)
    args = ap.parse_args()
    payload = os.urandom(8 * 1024)
    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir="/tmp") as tmp:
        big_path = Path(tmp) / "big.bin"
        with open(big_path, "wb") as fh:
            for _ in range(args.big_mb):
                fh.write(os.urandom(MB))
        size = big_path.stat().st_size
        t0 = time.perf_counter()
        shutil.copyfile(big_path, Path(tmp) / "copy.bin")
        copy_mbs = size / MB / (time.perf_counter() - t0)
        os.unlink(Path(tmp) / "copy.bin")
        rows.append(("anchor", f"shutil.copyfile {args.big_mb} MB", copy_mbs, "MB/s"))

        stores = {"local": open_store(f"file://{tmp}/objects"), "s3 (ceph rgw)": s3_store()}
        anchor_put = anchor_get = None
        for name, store in stores.items():
            for threads in (1, 8, 32):
                put_rate, get_rate = rate(store, threads, args.objects, payload)
                if anchor_put is None:
                    anchor_put, anchor_get = put_rate, get_rate
                rows.append((name, f"PUT 8 KB x{args.objects}, {threads} threads", put_rate, f"obj/s  {put_rate / anchor_put:5.2f}x"))
                rows.append((name, f"GET 8 KB x{args.objects}, {threads} threads", get_rate, f"obj/s  {get_rate / anchor_get:5.2f}x"))
            for what, mbs in big(store, big_path, size).items():
                rows.append((name, f"{what} {args.big_mb} MB", mbs, f"MB/s   {mbs / copy_mbs:5.2f}x"))
        s3 = stores["s3 (ceph rgw)"]
        s3.client.remove_bucket(s3.bucket)

    print(f"{'backend':<15} {'measure':<36} {'value':>10}  unit   ratio to anchor")
    for backend, measure, value, unit in rows:
        print(f"{backend:<15} {measure:<36} {value:>10.1f}  {unit}")
    print("anchors: rates vs local at 1 thread; MB/s vs shutil.copyfile of the same file")


if __name__ == "__main__":
    main()
