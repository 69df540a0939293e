"""``download_verified``: a local copy appears only when its bytes hash to what was recorded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from storage import IntegrityError, download_verified
from storage.local import LocalStore


@pytest.fixture()
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "objects")


def _corrupt(store: LocalStore, key: str) -> None:
    """Flip one bit of the stored bytes behind the store's back (the recorded SHA-256 stays)."""
    path = Path(store.local_path(key))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def test_right_object_becomes_the_file(store, tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # several stream chunks
    store.put_bytes("originals/ab/slide", data)
    target = tmp_path / "cache" / "slide.svs"
    target.parent.mkdir()
    assert download_verified(store, "originals/ab/slide", target) == target  # recorded hash
    assert target.read_bytes() == data
    again = tmp_path / "cache" / "again.svs"
    download_verified(store, "originals/ab/slide", again, hashlib.sha256(data).hexdigest().upper(),
                      expected_size=len(data))
    assert again.read_bytes() == data
    assert sorted(p.name for p in target.parent.iterdir()) == ["again.svs", "slide.svs"]  # no temporaries


def test_corrupted_object_is_refused_and_leaves_nothing(store, tmp_path):
    data = os.urandom(200_000)
    store.put_bytes("packs/b0-0.pack", data)
    _corrupt(store, "packs/b0-0.pack")
    target = tmp_path / "cache" / "b0-0.pack"
    target.parent.mkdir()
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        download_verified(store, "packs/b0-0.pack", target, temp_prefix=".fetch-")
    # the expected hash given by the caller (e.g. from the database) is checked the same way
    with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
        download_verified(store, "packs/b0-0.pack", target, hashlib.sha256(data).hexdigest())
    assert list(target.parent.iterdir()) == []


def test_wrong_size_or_wrong_expected_hash_is_refused(store, tmp_path):
    data = b"x" * 1000
    store.put_bytes("k", data)
    target = tmp_path / "k.bin"
    with pytest.raises(IntegrityError, match="1000 bytes downloaded, 999 expected"):
        download_verified(store, "k", target, expected_size=999)
    with pytest.raises(IntegrityError):
        download_verified(store, "k", target, "0" * 64)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "objects"] == []
