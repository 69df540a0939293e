"""Finding 2 of issue 16: values placed in a page (stain, label, file name, scanner
metadata) can never end the JSON configuration block and become markup."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus, StoredOriginal
from tests.fixtures.uploads import tus_metadata

REFRESH = '</script><meta http-equiv=refresh content="0;url=//e.example/">'
IMG = '<img src=x onerror=alert(1)>'
CONFIG_RE = re.compile(r'<script type="application/json" id="viewer-config">(.*?)</script>', re.S)


def hostile_slide(db, case_id: int, *, label: str = "A1", stain: str = REFRESH) -> Slide:
    original = StoredOriginal(sha256=uuid.uuid4().hex * 2, size=1, storage_key="originals/x")
    db.add(original)
    db.flush()
    slide = Slide(uid=uuid.uuid4().hex, case_id=case_id, label=label, stain=stain,
                  original_filename=f"{IMG}.svs", original_id=original.id, status=SlideStatus.READY,
                  description=json.dumps({"vendor": REFRESH, "format": IMG, "level_count": 3,
                                          "width": 1000, "height": 800}))
    db.add(slide)
    db.commit()
    return slide


def test_viewer_config_escapes_every_value(client_for, world, demo_case_id):
    hostile_slide(world, demo_case_id, label=IMG, stain=REFRESH)
    hostile_slide(world, demo_case_id, label="A2", stain="H&E")
    page = client_for("tech").get(f"/cases/{demo_case_id}/viewer")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # The configuration block is the only script element after the report panel's, and it holds all of it.
    blocks = CONFIG_RE.findall(html)
    assert len(blocks) == 1
    config = json.loads(blocks[0])
    assert [s["stain"] for s in config["slides"]] == [REFRESH, "H&E"]
    first = config["slides"][0]
    assert first["name"] == f"{IMG} · {REFRESH}"
    assert REFRESH in first["metadata"].values() and f"{IMG}.svs" in first["metadata"].values()
    # The raw payloads appear nowhere in the page, only their escaped forms.
    for raw in ("<meta http-equiv", "<img src=x", "</script><meta"):
        assert raw not in html
    assert "\\u003c/script\\u003e\\u003cmeta" in blocks[0]
    # Metadata keeps the order the viewer shows it in (Jinja's tojson would sort it).
    assert list(first["metadata"]) == ["Vendor", "Format", "Levels", "File"]


def test_upload_config_on_case_page_is_escaped(client_for, world, demo_case_id):
    html = client_for("tech").get(f"/cases/{demo_case_id}").get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="upload-config">(.*?)</script>', html, re.S).group(1)
    assert json.loads(block)["caseId"] == demo_case_id


def tus_create(client, case_id: int, **meta):
    values = {"filename": "a.svs", "case_id": str(case_id), "sha256": "0" * 64, **meta}
    return client.post("/api/v1/uploads/", headers={
        "Tus-Resumable": "1.0.0", "Upload-Length": "100", "Upload-Metadata": tus_metadata(**values)})


@pytest.mark.parametrize("meta, code", [
    ({"stain": "H&E\nKi-67"}, "invalid_stain"),
    ({"stain": "H&E\x00"}, "invalid_stain"),
    ({"stain": "HE\u202e76-iK"}, "invalid_stain"),
    ({"stain": "x" * 65}, "invalid_stain"),
    ({"filename": "slide\r\n.svs"}, "invalid_filename"),
    ({"filename": "gpj.\u202esvs"}, "invalid_filename"),
    ({"filename": "a" * 252 + ".svs"}, "invalid_filename"),
])
def test_upload_metadata_is_validated_at_creation(client_for, world, demo_case_id, meta, code):
    resp = tus_create(client_for("tech"), demo_case_id, **meta)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == code


def test_upload_metadata_plain_text_is_kept_verbatim(client_for, world, demo_case_id):
    from pathology_hub.models import Upload
    resp = tus_create(client_for("tech"), demo_case_id, stain="  Ki-67 <30%> & PD-L1  ", filename="病理 1.svs")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    world.expire_all()
    upload = world.scalars(select(Upload)).one()
    assert (upload.stain, upload.filename) == ("Ki-67 <30%> & PD-L1", "病理 1.svs")


# ---------------------------------------------------------------- in Chromium
BROWSER_REFRESH = '</script><meta http-equiv=refresh content="0;url=/pwned">'
BROWSER_IMG = '<img src=x onerror="document.title=\'pwned\'">'


@pytest.mark.browser
@pytest.mark.slow
def test_viewer_survives_hostile_slide_in_chromium(browser, live_server, client_for, world, synthetic_slide,
                                                   tmp_path, demo_case_id, artifacts):
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from tests.browser_helpers import login, wait_until
    from tests.fixtures.uploads import tus_upload
    tech = client_for("tech")
    second = write_synthetic_slide(tmp_path / "second.svs", 1600, 1200, mpp=0.25, seed=21)
    # The stain payload enters where the attacker put it: the upload metadata.
    assert tus_upload(tech, synthetic_slide, demo_case_id, stain=BROWSER_REFRESH).status_code == 201
    assert tus_upload(tech, second, demo_case_id, stain="Ki-67").status_code == 201
    world.expire_all()
    hostile, good = world.scalars(select(Slide).order_by(Slide.id)).all()
    assert hostile.status is SlideStatus.READY and hostile.stain == BROWSER_REFRESH
    hostile.label = BROWSER_IMG[:64]
    hostile.original_filename = BROWSER_IMG + ".svs"
    desc = json.loads(hostile.description)
    desc["vendor"] = BROWSER_REFRESH
    hostile.description = json.dumps(desc)
    world.commit()

    ctx = browser.new_context(viewport={"width": 1300, "height": 850})
    page = login(ctx, live_server, "tech")
    errors: list[str] = []
    csp: list[str] = []
    requested: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("request", lambda r: requested.append(r.url))
    url = f"{live_server}/cases/{demo_case_id}/viewer"
    page.goto(url)
    wait_until(page, "window.pathologyViewer && pathologyViewer.drawState().primary.fullyLoaded")
    page.wait_for_timeout(1500)  # a meta refresh with delay 0 would have fired by now
    assert page.url.split("?")[0] == url and "pwned" not in page.url
    assert not [r for r in requested if "/pwned" in r or r.endswith("/x")], requested
    assert page.evaluate("document.querySelectorAll('meta[http-equiv], img[src=x], img[src$=\"/x\"]').length") == 0
    assert page.title() != "pwned"
    assert not errors, errors
    assert not csp, csp  # not even a blocked inline handler: the payload never became markup
    shown = page.evaluate("pathologyViewer.getState().slideId")
    assert shown == hostile.id
    assert page.evaluate("pathologyViewer.drawState().primary.canvas.drawn") > 0
    # The payload is shown as text where the viewer shows the slide's name.
    assert page.locator(f"text={BROWSER_REFRESH}").count() + page.evaluate(
        f"document.body.innerText.includes({json.dumps(BROWSER_REFRESH)})") >= 1
    page.screenshot(path=str(artifacts / "viewer-hostile-slide.png"))
    # The case's other slide still opens and draws.
    page.evaluate(f"pathologyViewer.setState({{slideId: {good.id}}})")
    wait_until(page, f"pathologyViewer.getState().slideId === {good.id} && pathologyViewer.drawState().primary.fullyLoaded")
    assert page.evaluate("pathologyViewer.drawState().primary.canvas.drawn") > 0
    assert page.url.startswith(url) and not errors
    ctx.close()
