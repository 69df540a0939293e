"""Key rules, URL parsing and fail-fast behaviour that need no running gateway."""

from __future__ import annotations

import socket
import time

import pytest

from storage import InvalidKey, StorageUnavailable, open_store, validate_key, validate_prefix
from storage.local import LocalStore
from storage.retry import RetryPolicy, retry_call
from storage.s3 import S3Store
from storage.url import LocalConfig, S3Config, parse_storage_url


@pytest.mark.parametrize("key", ["a", "cases/12/slide.svs", "ü/ß.tiff", "a b/c", "x" * 1024, "a/b..c"])
def test_good_keys_pass_unchanged(key):
    assert validate_key(key) == key


@pytest.mark.parametrize("key,fragment", [
    ("", "empty"), ("/a", "absolute"), ("a/../b", "'..'"), ("a\\b", "backslash"),
    ("a\x00", "control"), ("a\tb", "control"), (".a", "reserved"), ("a//b", "empty path segment"),
    ("a/", "empty path segment"), ("x" * 1025, "1024 bytes"), ("a\udc80", "surrogate"),
])
def test_bad_keys_name_the_problem(key, fragment):
    with pytest.raises(InvalidKey, match=fragment):
        validate_key(key)


def test_prefixes_allow_partial_and_trailing_segments():
    for prefix in ["", "a", "a/", "a/b", "cases/12/sl"]:
        assert validate_prefix(prefix) == prefix
    for prefix in ["/a", "a//", "../", "a/.b", ".."]:
        with pytest.raises(InvalidKey):
            validate_prefix(prefix)


def test_storage_urls():
    assert parse_storage_url("file:///srv/objects") == LocalConfig("/srv/objects")
    cfg = parse_storage_url("s3://AK:S%2Fk@127.0.0.1:7480/pathology-hub?secure=false&region=eu-west-1")
    assert cfg == S3Config("127.0.0.1:7480", "AK", "S/k", "pathology-hub", False, "eu-west-1")
    assert parse_storage_url("s3://a:b@s3.example.org/bkt").secure is True
    for bad in ["file://relative/path", "s3://host/bucket", "s3://a:b@host/", "ftp://x/y",
                "s3://a:b@h/b?secure=maybe", "s3://a:b@h/b?colour=red"]:
        with pytest.raises(ValueError):
            parse_storage_url(bad)


def test_description_has_no_credentials(tmp_path):
    s3 = open_store("s3://ACCESSKEY:SECRETKEY@127.0.0.1:1/bucket-x?secure=false")
    assert isinstance(s3, S3Store)
    assert "ACCESSKEY" not in s3.description and "SECRETKEY" not in s3.description
    assert "127.0.0.1:1/bucket-x" in s3.description
    local = open_store(f"file://{tmp_path}/objs")
    assert isinstance(local, LocalStore) and local.description == f"file://{tmp_path}/objs"


def test_retry_is_bounded_and_only_for_transient_errors():
    calls = []

    def flaky():
        calls.append(time.monotonic())
        raise ConnectionError("down")
    with pytest.raises(StorageUnavailable):
        retry_call(flaky, policy=RetryPolicy(attempts=4, base_delay=0.01), is_transient=lambda e: True, what="t")
    assert len(calls) == 4

    def broken():
        raise KeyError("bug")
    with pytest.raises(KeyError):
        retry_call(broken, policy=RetryPolicy(), is_transient=lambda e: isinstance(e, ConnectionError), what="t")

    results = iter([ConnectionError(), ConnectionError(), "ok"])

    def recovers():
        r = next(results)
        if isinstance(r, Exception):
            raise r
        return r
    assert retry_call(recovers, policy=RetryPolicy(base_delay=0.01), is_transient=lambda e: True, what="t") == "ok"


def test_refused_connection_fails_fast():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = open_store(f"s3://a:b@127.0.0.1:{port}/bucket?secure=false")
    start = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.get_bytes("k")
    assert time.monotonic() - start < 2


def test_unanswered_connect_fails_within_budget():
    # A listener whose accept backlog is full drops new SYNs: the connect-timeout path.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        fillers = []
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        try:
            store = S3Store(f"127.0.0.1:{port}", "a", "b", "bucket", secure=False, connect_timeout=0.5)
            start = time.monotonic()
            with pytest.raises(StorageUnavailable):
                store.stat("k")
            assert time.monotonic() - start < store.retry.budget + 0.5 + 1
        finally:
            for c in fillers:
                c.close()
