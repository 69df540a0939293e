"""Fixtures for the slide ingest tests: the shared real-scanner files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_SLIDES = REPO / ".." / "shared" / "slides"


@pytest.fixture(scope="session")
def slides_dir() -> Path:
    """``../shared/slides``; skipped when absent locally, a failure under CI=true."""
    if not (SHARED_SLIDES / "aperio-jpeg-CMU-1-Small-Region.svs").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real test slides missing at {SHARED_SLIDES} under CI")
        pytest.skip(f"real test slides not available at {SHARED_SLIDES}")
    return SHARED_SLIDES.resolve()
