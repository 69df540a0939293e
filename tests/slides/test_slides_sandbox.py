"""A crashing, hanging or memory-hungry decoder only ever costs the child."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from pathology_hub.slides import SlideRejected, inspect_slide
from pathology_hub.slides.probe import TEST_HOOK_ENV


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "p.png"
    Image.new("RGB", (32, 32), (200, 120, 160)).save(path)
    return path


@pytest.mark.parametrize("hook, signal_name", [("abort", "SIGABRT"), ("segfault", "SIGSEGV")])
def test_child_crash_is_a_rejection(photo: Path, monkeypatch, hook: str, signal_name: str) -> None:
    monkeypatch.setenv(TEST_HOOK_ENV, hook)
    with pytest.raises(SlideRejected) as info:
        inspect_slide(photo)
    assert info.value.code == "probe_crashed"
    assert signal_name in info.value.message and "crashed" in info.value.message
    # This process is still alive and the next probe works.
    monkeypatch.delenv(TEST_HOOK_ENV)
    assert inspect_slide(photo).kind == "photo"


def test_child_hang_times_out(photo: Path, monkeypatch) -> None:
    monkeypatch.setenv(TEST_HOOK_ENV, "sleep")
    started = time.monotonic()
    with pytest.raises(SlideRejected) as info:
        inspect_slide(photo, timeout=2)
    assert info.value.code == "probe_timeout"
    assert "2 seconds" in info.value.message
    assert time.monotonic() - started < 10


def test_memory_limit_applies_in_child(photo: Path, monkeypatch) -> None:
    monkeypatch.setenv(TEST_HOOK_ENV, "memory")
    with pytest.raises(SlideRejected) as info:
        inspect_slide(photo, memory_limit=1 << 30)
    assert info.value.code == "probe_out_of_memory"


def test_memory_limit_too_small_to_open_anything(photo: Path) -> None:
    """A limit below what the interpreter needs makes the child fail, never the caller."""
    with pytest.raises(SlideRejected) as info:
        inspect_slide(photo, memory_limit=64 << 20)
    assert info.value.code in {"probe_crashed", "probe_out_of_memory"}
