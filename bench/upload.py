"""Throughput of tus uploads on loopback versus a plain file copy.

Why: slide files are multi-GB, so the upload path (client read + checksums ->
HTTP -> gunicorn -> staging file + SHA-256 + fsync) must stay close to disk
speed. The target is the product's upload client (``pathology_hub.upload_client``,
what ``flask upload`` and the watch folder use) at >= 70 % of a plain copy to the
same filesystem, in its default chunk size.

Run:  .venv/bin/python bench/upload.py [--size-mib 2048] [--workers 2] [--worker-class gthread]

It generates the source file once (a 64 MiB random block repeated), times a
plain copy (median of three, and with fsync, since the server fsyncs what it
acknowledges), starts the Flask adapter under gunicorn (gthread workers, as
``gunicorn.conf.py`` runs production) and uploads:

* the product client, default chunk size, per-chunk SHA-1 ``Upload-Checksum``,
  whole-file SHA-256 computed while sending and declared with the last chunk
  (``Repr-Digest``), all timed (headline row);
* raw tuspy ``Uploader`` for comparison, with the SHA-256 handed in precomputed
  (not timed): same chunk size with checksums (what the product client did
  before pipelining), one PATCH for the whole file, and small chunks;
* curl streaming the file in one PATCH (what the server sustains when the
  client is not the bottleneck).

If ``storage/local.py`` exists, the completed file is also moved into a
``file://`` object store inside ``on_complete``; that move is subtracted.
Ratios are within one run, so they stay meaningful on a busy machine.
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
        # on disk before anything is timed: otherwise its writeback lands on whichever row runs first
        fh.flush()
        os.fsync(fh.fileno())
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


def _copy_times(src: Path, dst: Path, runs: int = 3) -> tuple[float, float]:
    """Median seconds of ``shutil.copyfile`` and of copyfile + fsync (several runs: a single one is noisy)."""
    plain, synced = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        shutil.copyfile(src, dst)
        plain.append(time.perf_counter() - t0)
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        synced.append(time.perf_counter() - t0)
        dst.unlink()
    return sorted(plain)[runs // 2], sorted(synced)[runs // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"),
                        help="gunicorn worker class (production: gthread, 4 threads)")
    parser.add_argument("--chunk-mib", type=int, default=None,
                        help="product client chunk size (default: its DEFAULT_CHUNK)")
    parser.add_argument("--small-chunk-mib", type=int, default=8, help="chunk size of the raw-tuspy small-chunk row")
    parser.add_argument("--only-product", action="store_true", help="skip the raw tuspy and curl rows")
    parser.add_argument("--dir", default=None, help="work dir (default: a temp dir on /var/tmp)")
    args = parser.parse_args()

    from tusclient import client as tus_client

    from pathology_hub import upload_client

    chunk = (args.chunk_mib * MiB) if args.chunk_mib else upload_client.DEFAULT_CHUNK
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

        copy_s, copy_sync_s = _copy_times(src, staging / "copy.bin")
        t0 = time.perf_counter()
        assert upload_client.sha256_of(src) == digest
        rehash_s = time.perf_counter() - t0
        print(f"{'plain copy (shutil.copyfile)':44s} {_mbps(size, copy_s):8.0f} MiB/s  ({copy_s:.2f} s, median of 3)")
        print(f"{'plain copy + fsync':44s} {_mbps(size, copy_sync_s):8.0f} MiB/s  ({copy_sync_s:.2f} s, median of 3)")
        print(f"{'whole-file SHA-256 alone (one core)':44s} {_mbps(size, rehash_s):8.0f} MiB/s  "
              f"({rehash_s:.2f} s)")
        # A plain copy *into the object store*: what storing the slide costs with no network at all
        # (LocalStore.put_file: copy + SHA-256 recorded in metadata + fsync + atomic rename).
        from storage.local import LocalStore
        put_times = []
        for run in range(3):
            anchor_store = LocalStore(str(staging / "anchor-store"))
            t0 = time.perf_counter()
            info = anchor_store.put_file(f"slides/anchor-{run}", str(src))
            put_times.append(time.perf_counter() - t0)
            assert info.sha256 == digest
            shutil.rmtree(staging / "anchor-store")
        put_s = sorted(put_times)[1]
        print(f"{'copy into the object store (put_file)':44s} {_mbps(size, put_s):8.0f} MiB/s  ({put_s:.2f} s, median of 3)")

        port = _free_port()
        env = dict(os.environ, BENCH_STAGING=str(staging), BENCH_STORE=str(store), BENCH_RESULTS=str(results),
                   PYTHONPATH=str(REPO), ACCESS_LOG="/dev/null", WEB_TIMEOUT="900")
        worker = ["-k", "gthread", "--threads", "4"] if args.worker_class == "gthread" else ["-k", "sync"]
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-w", str(args.workers), *worker,
             "-b", f"127.0.0.1:{port}", "--timeout", "900", "--log-level", "warning", "bench.upload:make_app()"],
            cwd=REPO, env=env)
        _wait_http(port, proc)
        url = f"http://127.0.0.1:{port}/api/v1/uploads/"
        # Untimed warm-up: the first upload into a freshly started gunicorn runs at about half
        # speed whatever the client (raw tuspy too), which would otherwise land on the first row.
        warm = work / "warm-up.bin"
        _generate(warm, min(size, 256 * MiB))
        upload_client.HubUploader(f"http://127.0.0.1:{port}", TOKEN.split(" ", 1)[1], work / "warm.json").send(
            warm, {"filename": "warm-up.bin"})
        warm.unlink()
        shutil.rmtree(store, ignore_errors=True)
        store.mkdir(exist_ok=True)
        print(f"server: gunicorn {args.workers} x {args.worker_class} (after an untimed warm-up upload)")

        def report(label: str, seconds: float, upload_url: str, note: str = "") -> None:
            upload_id = upload_url.rstrip("/").rsplit("/", 1)[1]
            result = json.loads((results / f"{upload_id}.json").read_text())
            assert result["sha256"] == digest, "server-side SHA-256 differs"
            net_s = seconds - result["move_s"]
            print(f"{label:44s} {_mbps(size, net_s):8.0f} MiB/s  ({net_s:.2f} s{note}) "
                  f"ratio vs copy {copy_s / net_s:5.0%}, vs copy+fsync {copy_sync_s / net_s:5.0%}, "
                  f"vs put_file {put_s / net_s:5.0%}")
            shutil.rmtree(store, ignore_errors=True)
            store.mkdir(exist_ok=True)

        # Headline: the product's client exactly as `flask upload` runs it (SHA-256 pass included).
        hub = upload_client.HubUploader(f"http://127.0.0.1:{port}", TOKEN.split(" ", 1)[1], work / "state.json",
                                        chunk_size=chunk)
        t0 = time.perf_counter()
        upload_url, sent_digest = hub.send(src, {"filename": "source.bin"})
        hub_s = time.perf_counter() - t0
        assert sent_digest == digest
        report(f"PRODUCT upload_client, {chunk // MiB} MiB chunks + sha1", hub_s, upload_url,
               "; SHA-256 hashed while sending, included")
        if args.only_product:
            return

        client = tus_client.TusClient(url, headers={"Authorization": TOKEN})
        rows = ((f"raw tuspy, {chunk // MiB} MiB chunks + sha1", chunk, True),
                ("raw tuspy, default chunk (1 PATCH)", None, False),
                (f"raw tuspy, {args.small_chunk_mib} MiB chunks", args.small_chunk_mib * MiB, False))
        for label, size_of_chunk, checksum in rows:
            kwargs = {"chunk_size": size_of_chunk} if size_of_chunk else {}
            uploader = client.uploader(str(src), metadata={"filename": "source.bin", "sha256": digest},
                                       upload_checksum=checksum, **kwargs)
            t0 = time.perf_counter()
            uploader.upload()
            report(label, time.perf_counter() - t0, uploader.url, "; SHA-256 precomputed, not timed")

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
        report("curl, one PATCH (C client, no checksum)", time.perf_counter() - t0, target)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
