"""Helpers for ingest tests: tus uploads through the Flask test client."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest


def tus_metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in values.items())


def tus_upload(client, path: Path, case_id: int, *, stain: str = "H&E", sha256: str | None = None,
               filename: str | None = None, allow_duplicate: bool = False):
    """Creation-with-upload in one request, as small tus clients do.

    ``allow_duplicate``: attach a file that is already a slide of the case (else 409 duplicate_slide)."""
    data = path.read_bytes()
    digest = sha256 or hashlib.sha256(data).hexdigest()
    extra = {"allow_duplicate": "1"} if allow_duplicate else {}
    meta = tus_metadata(filename=filename or path.name, case_id=str(case_id), stain=stain, sha256=digest, **extra)
    return client.post("/api/v1/uploads/", data=data, headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)), "Upload-Metadata": meta,
        "Content-Type": "application/offset+octet-stream"})


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory) -> Path:
    from pathology_hub.slides.synthetic import write_synthetic_slide
    path = tmp_path_factory.mktemp("slides") / "synthetic-he.svs"
    return write_synthetic_slide(path, 3000, 2200, mpp=0.25, tissue_fraction=0.45, seed=7)


@pytest.fixture
def demo_case_id(world):
    from sqlalchemy import select

    from pathology_hub.models import Case
    return world.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))
