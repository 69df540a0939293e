"""Throughput of tus uploads on loopback versus a plain file copy.

Why: slide files are multi-GB, so the upload path (gunicorn -> Werkzeug stream
-> staging file + SHA-256 + fsync) must stay close to disk speed. The target is
tus >= 70 % of ``shutil.copyfile`` to the same filesystem.

Run:  .venv/bin/python bench/upload.py [--size-mib 2048] [--workers 2]

It generates the source file once (a 64 MiB random block repeated), starts the
Flask adapter under gunicorn (sync workers) and uploads with tuspy twice:
default chunk size (one PATCH for the whole file) and 8 MiB chunks. If
``storage/local.py`` exists, the completed file is also moved into a
``file://`` object store inside ``on_complete``, timed separately.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TOKEN = "Bearer bench"
MiB = 1 << 20


def make_app():  # gunicorn entry point: 'bench.upload:make_app()'
    """The adapter with hooks as the application would wire them (env-configured)."""
    from flask import Flask, request

    from pathology_hub.uploads import StagingArea, TusServer, UploadInfo
    from pathology_hub.web.tus_adapter import make_tus_blueprint

    staging = StagingArea(os.environ["BENCH_STAGING"])
    results = Path(os.environ["BENCH_RESULTS"])
    store = None
    if (REPO / "storage" / "local.py").exists():
        import storage
        store = storage.open_store(f"file://{os.environ['BENCH_STORE']}")

    def on_complete(info: UploadInfo) -> None:
        t0 = time.perf_counter()
        if store is not None:
            # As the application does: hand the verified file over (a rename on the same filesystem).
            store.put_file(f"uploads/{info.id}", str(info.data_path), move=True, sha256=info.sha256)
        (results / f"{info.id}.json").write_text(json.dumps({
            "sha256": info.sha256, "move_s": time.perf_counter() - t0, "moved": store is not None,
            "pid": os.getpid()}))

    server = TusServer(staging, max_size=64 << 30, expiration=dt.timedelta(hours=1), on_complete=on_complete,
                       checkpoint_bytes=int(os.environ.get("BENCH_CHECKPOINT_MIB", "64")) * MiB)
    app = Flask("bench_upload", root_path=str(REPO))
    app.register_blueprint(make_tus_blueprint(
        lambda: server, authenticate=lambda: "bench" if request.headers.get("Authorization") == TOKEN else None))
    return app


def _generate(path: Path, size: int) -> str:
    block = os.urandom(64 * MiB)
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            part = block[: min(left, len(block))]
            fh.write(part)
            digest.update(part)
            left -= len(part)
    return digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(port: int, proc: subprocess.Popen) -> None:
    import requests
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            requests.options(f"http://127.0.0.1:{port}/api/v1/uploads/", timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def _mbps(size: int, seconds: float) -> float:
    return size / MiB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--dir", default=None, help="work dir (default: a temp dir on /var/tmp)")
    args = parser.parse_args()

    from tusclient import client as tus_client

    work = Path(tempfile.mkdtemp(prefix="tus-bench-", dir=args.dir or "/var/tmp"))
    staging, store, results = work / "staging", work / "store", work / "results"
    for d in (staging, store, results):
        d.mkdir()
    src = work / "source.bin"
    size = args.size_mib * MiB
    proc = None
    try:
        t0 = time.perf_counter()
        digest = _generate(src, size)
        print(f"generated {args.size_mib} MiB in {time.perf_counter() - t0:.1f} s (sha256 {digest[:16]}...)")

        t0 = time.perf_counter()
        shutil.copyfile(src, staging / "copy.bin")
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fd = os.open(staging / "copy.bin", os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        copy_sync_s = copy_s + time.perf_counter() - t0
        (staging / "copy.bin").unlink()
        t0 = time.perf_counter()
        h = hashlib.sha256()
        with open(src, "rb", buffering=0) as fh:
            while block := fh.read(4 * MiB):
                h.update(block)
        rehash_s = time.perf_counter() - t0
        print(f"plain copy (shutil.copyfile):      {_mbps(size, copy_s):8.0f} MiB/s  ({copy_s:.2f} s)")
        print(f"plain copy + fsync:                {_mbps(size, copy_sync_s):8.0f} MiB/s  ({copy_sync_s:.2f} s)")
        print(f"re-hash whole file from disk:      {_mbps(size, rehash_s):8.0f} MiB/s  ({rehash_s:.2f} s)")

        port = _free_port()
        # gunicorn with sync workers (one request streams per worker), quiet and with a long timeout
        env = dict(os.environ, BENCH_STAGING=str(staging), BENCH_STORE=str(store), BENCH_RESULTS=str(results),
                   PYTHONPATH=str(REPO), ACCESS_LOG="/dev/null", WEB_TIMEOUT="900")
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-w", str(args.workers), "-b", f"127.0.0.1:{port}",
             "--timeout", "900", "--log-level", "warning", "bench.upload:make_app()"], cwd=REPO, env=env)
        _wait_http(port, proc)
        url = f"http://127.0.0.1:{port}/api/v1/uploads/"
        client = tus_client.TusClient(url, headers={"Authorization": TOKEN})

        for label, chunk in (("tuspy default chunk (1 PATCH)", None), (f"tuspy {args.chunk_mib} MiB chunks", args.chunk_mib * MiB)):
            kwargs = {"chunk_size": chunk} if chunk else {}
            uploader = client.uploader(str(src), metadata={"filename": "source.bin", "sha256": digest}, **kwargs)
            t0 = time.perf_counter()
            uploader.upload()
            tus_s = time.perf_counter() - t0
            upload_id = uploader.url.rstrip("/").rsplit("/", 1)[1]
            result = json.loads((results / f"{upload_id}.json").read_text())
            assert result["sha256"] == digest, "server-side SHA-256 differs"
            net_s = tus_s - result["move_s"]
            moved = (f"; incl. move to object store {result['move_s']:.2f} s" if result["moved"] else "")
            print(f"{label:34s} {_mbps(size, net_s):8.0f} MiB/s  ({net_s:.2f} s{moved}) "
                  f"ratio vs copy {copy_s / net_s:5.0%}, vs copy+fsync {copy_sync_s / net_s:5.0%}")
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(exist_ok=True)

        # The same protocol from a C client (curl streams the file in one PATCH): what the
        # server side sustains when the Python client is not the bottleneck.
        import requests
        from pathology_hub.uploads.tus import encode_metadata
        created = requests.post(url, headers={"Authorization": TOKEN, "Tus-Resumable": "1.0.0",
                                              "Upload-Length": str(size),
                                              "Upload-Metadata": encode_metadata({"filename": "source.bin",
                                                                                  "sha256": digest})})
        location = created.headers["Location"]
        target = location if location.startswith("http") else f"http://127.0.0.1:{port}{location}"
        t0 = time.perf_counter()
        subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "PATCH", "-T", str(src), "-H", f"Authorization: {TOKEN}",
                        "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0", "-H", "Expect:",
                        "-H", "Content-Type: application/offset+octet-stream", target], check=True)
        curl_s = time.perf_counter() - t0
        upload_id = target.rstrip("/").rsplit("/", 1)[1]
        result = json.loads((results / f"{upload_id}.json").read_text())
        assert result["sha256"] == digest, "server-side SHA-256 differs"
        net_s = curl_s - result["move_s"]
        print(f"{'curl, one PATCH (C client)':34s} {_mbps(size, net_s):8.0f} MiB/s  ({net_s:.2f} s) "
              f"ratio vs copy {copy_s / net_s:5.0%}, vs copy+fsync {copy_sync_s / net_s:5.0%}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
