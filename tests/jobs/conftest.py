"""Fixtures shared by the job tests: a slide being tiled with its queued tile job, and the
queue replaced by a list (nothing runs; the tests drive ``jobs`` themselves)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from pathology_hub.models import Case, Slide, SlideStatus, StoredOriginal, User


@pytest.fixture
def queued(monkeypatch):
    """(job id, delay) of every job handed to the queue."""
    from pathology_hub.domain import jobs
    calls: list[tuple[int, float | None]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda job_id, delay=None: calls.append((job_id, delay)))
    return calls


@pytest.fixture
def tiling_slide(world) -> Slide:
    """A slide whose tile job is queued (no file behind it: nothing runs the real handler)."""
    from pathology_hub.domain import jobs
    db = world
    case = db.scalar(select(Case).where(Case.case_number == "DEMO-2026-001"))
    tech = db.scalar(select(User).where(User.username == "tech"))
    original = StoredOriginal(sha256=uuid.uuid4().hex * 2, size=1, storage_key="originals/x")
    db.add(original)
    db.flush()
    slide = Slide(uid=uuid.uuid4().hex, case_id=case.id, original_id=original.id, label="S1", stain="H&E",
                  original_filename="a.svs", status=SlideStatus.TILING, created_by_id=tech.id,
                  description='{"width": 10}')
    db.add(slide)
    db.flush()
    jobs.create(db, "tile", slide_id=slide.id)
    db.commit()
    return slide
