"""The case page in Chromium: a rejected slide is withdrawn through a confirmation dialog, the stain
editor sets IHC Ki-67 and the block, and dropping the same file again warns with a link to the
existing slide and uploads only after "upload anyway" (issue 15, items 3, 6 and 9).

Screenshots go to $SHOTS_DIR (default: test-artifacts/) as deadends-<locale>-*.png."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus
from tests.browser_helpers import login, wait_until
from tests.fixtures.uploads import tus_upload

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TEXT = {"zh-CN": {"rejected": "已拒收", "withdrawn": "已从病例中撤回", "ihc": "免疫组化 Ki-67",
                  "duplicate": "已是本病例的切片 S1"},
        "en": {"rejected": "Rejected", "withdrawn": "was withdrawn from the case", "ihc": "IHC Ki-67",
               "duplicate": "already slide S1 of this case"}}


# English words are covered by the HTTP tests; SHOTS_LOCALES=zh-CN,en adds the English browser run
# (for screenshots). Not a skip: the English run is simply not collected by default.
@pytest.mark.parametrize("locale", (os.environ.get("SHOTS_LOCALES") or "zh-CN").split(","))
def test_withdraw_edit_stain_and_duplicate_warning(locale, browser, live_server, world, client_for, synthetic_slide,
                                                    tmp_path, demo_case_id, artifacts):
    shots = Path(os.environ.get("SHOTS_DIR") or artifacts)
    shots.mkdir(parents=True, exist_ok=True)
    words = TEXT[locale]
    tech = client_for("tech")
    bogus = tmp_path / "scan-17.svs"
    bogus.write_text("this is not an image at all\n" * 50)
    assert tus_upload(tech, synthetic_slide, demo_case_id).status_code == 201
    assert tus_upload(tech, bogus, demo_case_id).status_code == 201
    world.expire_all()
    good, bad = world.scalars(select(Slide).order_by(Slide.id)).all()
    assert bad.status is SlideStatus.REJECTED

    ctx = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    page = login(ctx, live_server, "tech")
    page.goto(f"{live_server}/cases/{demo_case_id}")
    row = page.locator(f"tr[data-slide-id='{bad.id}']")
    assert words["rejected"] in row.locator("[data-role=reason]").text_content()
    page.locator("#slides-card").screenshot(path=str(shots / f"deadends-{locale}-1-rejected-slide.png"))

    # Withdraw: a confirmation dialog first; "keep" closes it without a change.
    row.locator("[data-action=withdraw]").click()
    dialog = page.locator("#withdraw-dialog")
    assert dialog.is_visible() and "S2" in dialog.text_content()
    assert words["rejected"] in page.locator("[data-testid=withdraw-reason]").input_value()
    page.screenshot(path=str(shots / f"deadends-{locale}-2-withdraw-confirm.png"))
    dialog.locator("[data-action=close]").click()
    assert not dialog.is_visible()
    row.locator("[data-action=withdraw]").click()
    page.locator("[data-testid=withdraw-confirm]").click()
    page.wait_for_load_state()
    assert words["withdrawn"] in page.locator(".flash-success").text_content()
    assert page.locator(f"tr[data-slide-id='{bad.id}']").count() == 0
    world.expire_all()
    assert world.get(Slide, bad.id).status is SlideStatus.WITHDRAWN

    # Stain editor: IHC + marker + block, shown in the row once saved.
    page.locator(f"tr[data-slide-id='{good.id}'] [data-action=edit]").click()
    page.select_option("[data-testid=stain-category]", "ihc")
    page.fill("[data-testid=stain-name]", "Ki-67")
    page.fill("[data-testid=block-label]", "A1")
    page.screenshot(path=str(shots / f"deadends-{locale}-3-stain-editor.png"))
    page.locator("[data-testid=facts-save]").click()
    page.wait_for_load_state()
    good_row = page.locator(f"tr[data-slide-id='{good.id}']")
    assert good_row.locator("[data-role=stain]").text_content() == words["ihc"]
    assert "A1" in good_row.locator("[data-role=block]").text_content()
    # The polling refresh keeps it (the API renders the same row).
    page.evaluate("document.dispatchEvent(new Event('upload:complete'))")
    page.wait_for_timeout(1200)
    assert page.locator(f"tr[data-slide-id='{good.id}'] [data-role=stain]").text_content() == words["ihc"]

    # The same file again: a warning with a link to S1 before any byte is sent.
    wait_until(page, "window.pathologyUploader")
    page.set_input_files("#upload-app input[type=file]", [str(synthetic_slide)])
    wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'duplicate'", 60)
    item = page.evaluate("pathologyUploader.uploads[0]")
    assert item["duplicates"] == [good.id] and item["uploadUrl"] is None and item["bytesSent"] == 0
    assert words["duplicate"] in item["statusText"]
    link = page.locator("[data-testid=duplicate-link]")
    assert link.get_attribute("href").endswith(f"slide={good.id}")
    page.locator("#upload-app").screenshot(path=str(shots / f"deadends-{locale}-4-duplicate-warning.png"))
    world.expire_all()
    assert len(world.scalars(select(Slide).where(Slide.deleted_at.is_(None))).all()) == 1
    # Attaching it again is the deliberate choice.
    page.locator("[data-testid=upload-anyway]").click()
    wait_until(page, "pathologyUploader.uploads[0].state === 'done'", 90)
    world.expire_all()
    live = world.scalars(select(Slide).where(Slide.deleted_at.is_(None)).order_by(Slide.id)).all()
    assert len(live) == 2 and live[0].original_id == live[1].original_id
    page.goto(f"{live_server}/cases/{demo_case_id}")
    assert page.locator(f"tr[data-slide-id='{live[1].id}'] [data-role=duplicate]").count() == 1
    page.locator("#slides-card").screenshot(path=str(shots / f"deadends-{locale}-5-duplicate-attached.png"))
    ctx.close()
