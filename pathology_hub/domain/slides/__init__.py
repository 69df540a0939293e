"""Slides from upload to viewable pyramid.

The flow, each step idempotent so a retried job never duplicates data:

1. ``register_upload`` (tus creation): policy, size and quota checks, an ``Upload`` row.
2. ``complete_upload`` (last tus PATCH): the verified file moves into object storage
   under a key derived from its SHA-256 (stored once however often it is uploaded),
   a ``Slide`` appears in state *inspecting*, and an ``ingest`` job is queued.
3. ``ingest`` job: the file is opened in a sandboxed child process; a rejection is
   recorded with its reason, otherwise metadata, associated images and the quality
   report are stored and a ``tile`` job is queued.
4. ``tile`` job: the Deep Zoom pyramid is built into object storage; the slide is
   *ready* only when its manifest is stored.

Package layout (one job per module):

* :mod:`.keys` — object keys of originals, pyramids, thumbnails and associated images;
* :mod:`.descriptions` — the slide's stored description and quality report;
* :mod:`.quota` — a centre's used bytes and a user's open uploads;
* :mod:`.uploads` — registering, completing and failing uploads (steps 1 and 2);
* :mod:`.originals` — local copies of originals for the native readers on a worker;
* :mod:`.processing` — the ``ingest`` and ``tile`` job handlers (steps 3 and 4);
* :mod:`.status` — a slide's processing state for users, and retrying a failed slide;
* :mod:`.reading` — the web's questions about slides, each one unit of work.

Not to be confused with the top-level :mod:`pathology_hub.slides` (identifying and reading slide
files); this package is the domain side.  Callers keep using
``from pathology_hub.domain import slides as slide_service``: the public names are re-exported.
"""

from __future__ import annotations

from pathology_hub.domain.slides.descriptions import content_of, description_of, quality_of
from pathology_hub.domain.slides.keys import (SAFE_NAME, associated_key, original_key, pyramid_prefix, slide_prefix,
                                              thumbnail_key)
from pathology_hub.domain.slides.originals import (cache_dir, local_original, local_original_if_present,
                                                   openable_path)
from pathology_hub.domain.slides.processing import STORAGE_UNAVAILABLE, mark_job_failed, run_ingest, run_tiling
from pathology_hub.domain.slides.quota import TooManyOpenUploads, institution_usage, open_uploads_of
from pathology_hub.domain.slides.reading import (VIEWABLE, CaseSlides, SlideState, case_slides, find_slide,
                                                 record_slides_viewed, retry, slide_state, slide_with_uid,
                                                 viewable_slides)
from pathology_hub.domain.slides.status import get_slide, latest_job, retry_slide, storage_wait
from pathology_hub.domain.slides.uploads import (FILENAME_MAX, STAIN_MAX, add_local_file, cancel_upload,
                                                 complete_upload, expire_stale_uploads, expire_upload, fail_upload,
                                                 mark_storing, plain_text, register_upload)

__all__ = [
    "content_of",
    "VIEWABLE", "CaseSlides", "SlideState", "case_slides", "find_slide", "record_slides_viewed", "retry",
    "slide_state", "slide_with_uid", "viewable_slides",
    "FILENAME_MAX", "SAFE_NAME", "STAIN_MAX", "STORAGE_UNAVAILABLE", "TooManyOpenUploads", "add_local_file",
    "associated_key", "cache_dir", "cancel_upload", "complete_upload", "description_of", "expire_stale_uploads",
    "expire_upload", "fail_upload", "get_slide", "institution_usage", "latest_job", "local_original",
    "local_original_if_present", "mark_storing", "open_uploads_of", "openable_path", "original_key", "plain_text",
    "pyramid_prefix", "quality_of", "register_upload", "retry_slide", "mark_job_failed", "run_ingest", "run_tiling", "slide_prefix",
    "storage_wait", "thumbnail_key",
]
