"""One contract, two backends: every test runs against LocalStore and S3Store (Ceph RGW)."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from storage import (SHA256_META, IntegrityError, InvalidKey, ObjectNotFound, StorageError,
                     StorageUnavailable, read_verified, scrub)

MiB = 1024 * 1024


class RandomStream:
    """Non-seekable stream of random bytes that hashes what it hands out (no length known up front)."""

    def __init__(self, size: int, fail_after: int | None = None) -> None:
        self.remaining = size
        self.fail_after = fail_after
        self.sent = 0
        self.sha = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        if self.fail_after is not None and self.sent >= self.fail_after:
            raise OSError("client went away")
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        n = min(n, 4 * MiB)
        data = os.urandom(n)
        self.remaining -= n
        self.sent += n
        self.sha.update(data)
        return data

    def seekable(self) -> bool:
        return False


def stream_sha(store, key: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in store.open_stream(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


# -- round trips ---------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 8 * 1024])
def test_small_round_trip(store, size):
    data = os.urandom(size)
    info = store.put_bytes("cases/1/obj.bin", data)
    assert info.size == size
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("cases/1/obj.bin") == data
    assert b"".join(store.open_stream("cases/1/obj.bin")) == data
    assert store.stat("cases/1/obj.bin").size == size


def test_100mb_round_trip_streams_without_buffering(store):
    src = RandomStream(100 * MiB)
    info = store.put_stream("big/slide.svs", src, length=100 * MiB)
    assert info.size == 100 * MiB
    assert info.sha256 == src.sha.hexdigest()
    assert stream_sha(store, "big/slide.svs") == (src.sha.hexdigest(), 100 * MiB)
    assert store.stat("big/slide.svs").sha256 == src.sha.hexdigest()


def test_stream_of_unknown_length_above_multipart_threshold(store):
    src = RandomStream(40 * MiB + 123)
    info = store.put_stream("upload/unknown", src, length=None, content_type="image/tiff")
    assert info.size == 40 * MiB + 123
    stat = store.stat("upload/unknown")
    assert (stat.size, stat.sha256, stat.content_type) == (40 * MiB + 123, src.sha.hexdigest(), "image/tiff")
    assert stream_sha(store, "upload/unknown")[0] == src.sha.hexdigest()
    assert [i.key for i in store.list()] == ["upload/unknown"]  # no staging object visible


def test_put_file(store, tmp_path):
    path = tmp_path / "in.bin"
    data = os.urandom(20 * MiB + 7)
    path.write_bytes(data)
    info = store.put_file("files/in.bin", str(path), content_type="application/x-test")
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("files/in.bin") == data
    assert store.stat("files/in.bin").content_type == "application/x-test"


def test_short_stream_with_declared_length_is_rejected(store):
    with pytest.raises(StorageError):
        store.put_stream("short", io.BytesIO(b"abc"), length=10)
    assert not store.exists("short")


# -- ranges --------------------------------------------------------------------

def test_ranged_reads_at_the_edges(store):
    data = bytes(range(256)) * 4  # 1024 bytes
    store.put_bytes("r", data)
    assert store.get_range("r", 0, 10) == data[:10]
    assert store.get_range("r", 1000, 100) == data[1000:]   # truncated at the end
    assert store.get_range("r", 1023, 1) == data[-1:]
    assert store.get_range("r", 1024, 10) == b""            # offset at the end
    assert store.get_range("r", 5000, 10) == b""            # offset past the end
    assert store.get_range("r", 5, 0) == b""
    for offset, length in [(-1, 5), (0, -1)]:
        with pytest.raises((InvalidKey, ValueError)):
            store.get_range("r", offset, length)
    with pytest.raises(ObjectNotFound):
        store.get_range("missing", 0, 10)


def test_open_ranged_reads_like_get_range(store):
    data = bytes(range(256)) * 4
    store.put_bytes("rr", data)
    reader = store.open_ranged("rr")
    assert reader.read(0, 10) == data[:10]
    assert reader.read(1000, 100) == data[1000:]
    assert reader.read(1024, 10) == b""
    assert reader.read(500, 0) == b""
    with pytest.raises((InvalidKey, ValueError)):
        reader.read(-1, 5)
    with pytest.raises(ObjectNotFound):
        store.open_ranged("missing-ranged").read(0, 1)


# -- namespace -----------------------------------------------------------------

def test_list_and_delete_prefix_beyond_one_page(store):
    keys = [f"many/{i:05d}" for i in range(1100)]
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: store.put_bytes(k, k.encode()), keys))
    store.put_bytes("many-x", b"sorts before many/ in byte order")
    store.put_bytes("other/keep", b"keep")

    listed = [i.key for i in store.list("many/")]
    assert listed == keys
    assert [i.key for i in store.list("many")] == ["many-x", *keys]  # '-' < '/' as in S3
    assert all(i.size == 10 for i in store.list("many/"))

    assert store.delete_prefix("many/") == 1100
    assert list(store.list("many/")) == []
    assert [i.key for i in store.list()] == ["many-x", "other/keep"]


def test_delete_is_idempotent_and_exists_follows(store):
    store.put_bytes("d/x", b"1")
    assert store.exists("d/x")
    store.delete("d/x")
    store.delete("d/x")
    store.delete("never/was")
    assert not store.exists("d/x")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("d/x")
    with pytest.raises(ObjectNotFound):
        store.open_stream("d/x")


def test_concurrent_writers_to_different_keys(store):
    def work(t: int) -> dict[str, bytes]:
        out = {}
        for i in range(10):
            data = os.urandom(1000 + t * 10 + i)
            key = f"conc/{t:02d}/{i}"
            store.put_bytes(key, data)
            out[key] = data
        return out

    with cf.ThreadPoolExecutor(32) as pool:
        written = {k: v for part in pool.map(work, range(32)) for k, v in part.items()}
    assert len(written) == 320
    assert [i.key for i in store.list("conc/")] == sorted(written)
    for key, data in written.items():
        assert store.get_bytes(key) == data


BAD_KEYS = ["", "/etc/passwd", "../escape", "a/../../escape", "a/..", "..", "a\\b", "a\x00b",
            "a\nb", "a\x7fb", ".hidden", "a/.meta/b", "a//b", "a/", "x" * 1025, "é" * 513]


@pytest.mark.parametrize("key", BAD_KEYS, ids=[repr(k)[:20] for k in BAD_KEYS])
def test_bad_keys_are_rejected_and_touch_nothing(store, key, tmp_path, repo_root):
    before = sorted(p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents)
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        store.put_stream(key, io.BytesIO(b"x"))
    for op in (store.get_bytes, store.stat, store.delete, store.exists, lambda k: store.get_range(k, 0, 1)):
        with pytest.raises(InvalidKey):
            op(key)
    with pytest.raises(InvalidKey):
        store.copy("ok", key)
    assert list(store.list()) == []
    after = sorted(p for p in tmp_path.parent.rglob("*") if tmp_path not in p.parents)
    assert after == before
    assert not (repo_root / "escape").exists()


def test_bad_prefixes_are_rejected(store):
    for prefix in ["../", "/abs", "a//", ".x"]:
        with pytest.raises(InvalidKey):
            list(store.list(prefix))
        with pytest.raises(InvalidKey):
            store.delete_prefix(prefix)


# -- metadata ------------------------------------------------------------------

def test_stat_reports_size_etag_type_and_metadata(store):
    data = b"<svs bytes>"
    store.put_bytes("m/a", data, content_type="image/x-aperio-svs", metadata={"Case-Id": "C-12", "stain": "HE"})
    info = store.stat("m/a")
    assert info.key == "m/a"
    assert info.size == len(data)
    assert info.etag
    assert info.content_type == "image/x-aperio-svs"
    assert info.metadata == {"case-id": "C-12", "stain": "HE", SHA256_META: hashlib.sha256(data).hexdigest()}
    assert info.last_modified is not None
    with pytest.raises(ObjectNotFound):
        store.stat("m/missing")
    with pytest.raises(InvalidKey):
        store.put_bytes("m/b", b"", metadata={"bad key": "v"})


def test_copy_keeps_content_type_and_metadata(store):
    store.put_bytes("c/src", b"payload", content_type="text/plain", metadata={"origin": "scanner-3"})
    copied = store.copy("c/src", "c/dst")
    assert copied.key == "c/dst"
    src, dst = store.stat("c/src"), store.stat("c/dst")
    assert dst.content_type == "text/plain"
    assert dict(dst.metadata) == dict(src.metadata)
    assert dst.sha256 == hashlib.sha256(b"payload").hexdigest()
    assert store.get_bytes("c/dst") == b"payload"
    with pytest.raises(ObjectNotFound):
        store.copy("c/missing", "c/dst2")


def test_presigned_get_url(store, backend):
    data = os.urandom(3000)
    store.put_bytes("p/slide", data)
    url = store.presigned_get_url("p/slide")
    if backend == "local":
        assert url is None
        return
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == data


def test_overwrite_is_atomic_when_the_new_stream_fails(store):
    store.put_bytes("a/obj", b"old version", metadata={"v": "1"})
    with pytest.raises((OSError, StorageError)):
        store.put_stream("a/obj", RandomStream(60 * MiB, fail_after=20 * MiB), length=None)
    with pytest.raises((OSError, StorageError)):
        store.put_stream("a/new", RandomStream(60 * MiB, fail_after=20 * MiB), length=None)
    assert store.get_bytes("a/obj") == b"old version"
    assert store.stat("a/obj").metadata["v"] == "1"
    assert not store.exists("a/new")
    assert [i.key for i in store.list()] == ["a/obj"]
    if hasattr(store, "root"):  # no temp file left behind either
        assert sorted(p.name for p in (store.root / "a").iterdir()) == ["obj"]
    else:
        assert [i.key for i in store._list("", hidden=True)] == ["a/obj"]


# -- integrity -----------------------------------------------------------------

def test_scrub_reports_corrupted_and_missing(store, backend):
    good = {f"s/{i}": os.urandom(5000) for i in range(3)}
    for key, data in good.items():
        store.put_bytes(key, data)
    expected = {k: hashlib.sha256(v).hexdigest() for k, v in good.items()}
    expected["s/gone"] = "0" * 64

    # Corrupt s/1 behind the store's back, keeping its recorded sha256.
    if backend == "local":
        with open(store.root / "s" / "1", "r+b") as fh:
            fh.seek(100)
            fh.write(b"\xff\x00\xff")
    else:
        forged = {SHA256_META: expected["s/1"]}
        store.client.put_object(store.bucket, "s/1", io.BytesIO(b"bit rot"), 7, metadata=forged)
    assert store.stat("s/1").sha256 == expected["s/1"]

    for exp in (expected, None):
        report = scrub(store, "s/", exp)
        assert [c.key for c in report.corrupted] == ["s/1"]
        assert report.ok == ["s/0", "s/2"]
        assert not report.clean
    assert scrub(store, "s/", expected).missing == ["s/gone"]
    assert scrub(store, "s/").missing == []

    assert read_verified(store, "s/0") == good["s/0"]
    assert read_verified(store, "s/2", expected["s/2"]) == good["s/2"]
    with pytest.raises(IntegrityError):
        read_verified(store, "s/1")
    with pytest.raises(IntegrityError):
        read_verified(store, "s/0", expected["s/2"])


def test_ping(store):
    store.ping()


# -- failure modes -------------------------------------------------------------

def test_local_write_killed_midway_leaves_no_object(tmp_path, repo_root):
    """Process-kill atomicity is a property of the local backend's rename (S3 publishes whole objects)."""
    root = tmp_path / "root"
    from storage.local import LocalStore
    store = LocalStore(root)
    store.put_bytes("k/obj", b"committed")
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(repo_root)!r})
        from storage.local import LocalStore
        class Slow:
            def read(self, n=-1):
                time.sleep(0.01)
                return b"x" * 65536
        LocalStore({str(root)!r}).put_stream("k/obj", Slow())
    """)])
    try:
        deadline = time.monotonic() + 20
        while not any(p.name.startswith(".tmp-") and p.stat().st_size > 0 for p in (root / "k").iterdir()):
            assert time.monotonic() < deadline, "child never started writing"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(10)
    assert store.get_bytes("k/obj") == b"committed"
    assert [i.key for i in store.list()] == ["k/obj"]


def test_s3_gateway_outage_fails_fast_then_recovers(request, s3_ctl):
    store = request.getfixturevalue("s3_store_factory")()
    objects = {f"o/{i}": os.urandom(100_000 + i) for i in range(5)}
    for key, data in objects.items():
        store.put_bytes(key, data)
    assert s3_ctl("stop-rgw").returncode == 0
    try:
        for op in (lambda: store.get_bytes("o/0"), lambda: store.stat("o/1"),
                   lambda: store.put_bytes("o/new", b"x"), lambda: list(store.list("o/")),
                   store.ping):
            start = time.monotonic()
            with pytest.raises(StorageUnavailable):
                op()
            elapsed = time.monotonic() - start
            assert elapsed < 10, f"took {elapsed:.1f}s to report StorageUnavailable"
    finally:
        started = s3_ctl("start-rgw")
        assert started.returncode == 0, started.stderr
    for key, data in objects.items():
        assert store.get_bytes(key) == data
    store.put_bytes("o/after", b"back")
    assert store.get_bytes("o/after") == b"back"


def test_put_file_move_with_known_digest(store, tmp_path):
    """Finished uploads are handed over with move=True and their verified SHA-256."""
    data = os.urandom(300_000)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    info = store.put_file("moved/original", str(src), move=True, sha256=digest)
    assert info.sha256 == digest and info.size == len(data)
    assert store.get_bytes("moved/original") == data
    assert store.stat("moved/original").sha256 == digest
