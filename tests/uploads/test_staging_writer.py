"""The staging writer: whole aligned blocks go to the disk with O_DIRECT, the rest through
the page cache, and the file holds exactly the bytes received, whatever the offsets."""

from __future__ import annotations

import errno
import os
import random

import pytest

from pathology_hub.uploads import staging
from pathology_hub.uploads.staging import DIRECT_ALIGN, DataWriter, aligned_buffer


def _send(writer: DataWriter, data: bytes, buffer: memoryview) -> None:
    """What TusServer._receive does: read next_size() bytes into the aligned buffer, write them."""
    pos = 0
    while pos < len(data):
        n = writer.next_size(min(len(buffer), len(data) - pos))
        buffer[:n] = data[pos:pos + n]
        writer.write(buffer[:n], aligned_memory=True)
        pos += n


@pytest.mark.parametrize("start", [0, 1, 4095, 4096, 12345])
def test_bytes_land_exactly_from_any_offset(tmp_path, start):
    rng = random.Random(start)
    head = rng.randbytes(start)
    chunks = [rng.randbytes(size) for size in (3 * DIRECT_ALIGN + 17, 1, 64 << 10, 5000)]
    path = tmp_path / "data"
    path.write_bytes(head + b"scratch left by a crashed writer")
    buffer = aligned_buffer(16 << 10)
    offset = start
    for chunk in chunks:  # one writer per PATCH, as the server opens them
        with DataWriter(path, offset) as writer:
            _send(writer, chunk, buffer)
            writer.sync()
            assert writer.written == len(chunk)
        offset += len(chunk)
    assert path.read_bytes() == head + b"".join(chunks)


def test_direct_io_is_used_where_the_filesystem_has_it(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.touch()
    with DataWriter(path, 0) as writer:
        if writer._direct_fd is None:
            pytest.skip("this filesystem refuses O_DIRECT (the writer then writes through the page cache)")
        calls = []
        real = os.pwrite
        monkeypatch.setattr(staging.os, "pwrite", lambda fd, data, pos: calls.append(fd) or real(fd, data, pos))
        _send(writer, os.urandom(8 * DIRECT_ALIGN), aligned_buffer(8 * DIRECT_ALIGN))
        monkeypatch.undo()
        assert calls and set(calls) == {writer._direct_fd}


def test_a_refused_direct_write_falls_back_to_the_page_cache(tmp_path, monkeypatch):
    path = tmp_path / "data"
    path.touch()
    data = os.urandom(5 * DIRECT_ALIGN + 3)
    with DataWriter(path, 0) as writer:
        direct = writer._direct_fd
        real = os.pwrite

        def pwrite(fd, view, pos):
            if fd == direct:
                raise OSError(errno.EINVAL, "Invalid argument")
            return real(fd, view, pos)
        monkeypatch.setattr(staging.os, "pwrite", pwrite)
        _send(writer, data, aligned_buffer(2 * DIRECT_ALIGN))
        writer.sync()
        assert writer._direct_fd is None
    assert path.read_bytes() == data
