"""The viewer's and uploader's strings come from the catalogue: every key the JavaScript asks
``t()`` for is sent by the page (web/bundle_strings.py), translated into Chinese; the English
tables in viewer/src/**/strings.js are fallbacks with exactly the same keys."""

from __future__ import annotations

import re
from pathlib import Path

from flask_babel import force_locale

from pathology_hub.models import SlideStatus, UploadState
from pathology_hub.web import bundle_strings

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "viewer" / "src"


def _table_keys(path: Path) -> set[str]:
    return set(re.findall(r'^\s*"?([A-Za-z0-9_]+)"?\s*:', path.read_text(encoding="utf-8"), re.M))


def _used_keys(paths) -> set[str]:
    used: set[str] = set()
    for p in paths:
        used |= set(re.findall(r'\bt\(\s*["\']([A-Za-z0-9_]+)["\']', p.read_text(encoding="utf-8")))
    return used


def test_every_key_used_in_the_bundles_is_sent_translated(app):
    viewer_js = [p for p in SRC.rglob("*.js") if "upload" not in p.name and p.parent.name != "upload"]
    upload_js = [SRC / "upload.js", *(SRC / "upload").glob("*.js")]
    with app.test_request_context(), force_locale("zh_CN"):
        viewer, upload = bundle_strings.viewer_strings(), bundle_strings.upload_strings()
    fallbacks_viewer = (_table_keys(SRC / "viewer" / "strings.js") | _table_keys(SRC / "annotations" / "strings.js")
                        | _table_keys(SRC / "live" / "strings.js"))
    fallbacks_upload = _table_keys(SRC / "upload" / "strings.js")
    assert set(viewer) == fallbacks_viewer and set(upload) == fallbacks_upload
    assert not _used_keys(viewer_js) - set(viewer), "t() keys missing from viewer_strings()"
    assert not _used_keys(upload_js) - set(upload), "t() keys missing from upload_strings()"
    # upload.js shows t(`status_${status}`) for whatever the upload status endpoint answers
    statuses = {s.value for s in UploadState} | {"processing", "ready", "rejected", "failed"}
    assert {f"status_{s}" for s in statuses} <= set(upload)
    for key, text in {**viewer, **upload}.items():
        words = re.sub(r"\{[a-z]+\}", "", text)  # placeholders filled by the script
        assert re.search(r"[\u4e00-\u9fff]", text) or not re.search(r"[A-Za-z]{2,}", words), \
            f"{key}: {text!r} is not in Chinese"
    assert SlideStatus.REJECTED.value == "rejected"
