"""Uploader messages a Chinese technician meets: a dropped network is called a network problem (not
"cannot read the file"), and a server status without a text of its own is never shown as a raw key."""

from __future__ import annotations

import pytest

from tests.browser_helpers import login, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture
def demo_case_id(world) -> int:
    from sqlalchemy import select

    from pathology_hub.models import Case
    return world.scalar(select(Case.id).where(Case.case_number == "DEMO-2026-001"))


def _set_zh(world):
    from sqlalchemy import update

    from pathology_hub.models import User
    world.execute(update(User).values(locale="zh_CN"))
    world.commit()


def test_offline_upload_says_network_not_file(browser, live_server, world, tmp_path, demo_case_id):
    _set_zh(world)
    scan = tmp_path / "offline.svs"
    scan.write_bytes(b"\x00" * 4096)
    ctx = browser.new_context(locale="zh-CN")
    try:
        page = login(ctx, live_server, "tech")
        page.goto(f"{live_server}/cases/{demo_case_id}")
        wait_until(page, "window.pathologyUploader")
        ctx.set_offline(True)  # the cable is pulled before the file is added
        page.set_input_files("#upload-app input[type=file]", [str(scan)])
        wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].state === 'error'", 30)
        text = page.evaluate("pathologyUploader.uploads[0].statusText")
        assert "网络" in text, text            # 网络错误…: the network is named
        assert "无法读取文件" not in text, text  # not "cannot read the file"
    finally:
        ctx.close()


def test_unknown_server_status_is_not_a_raw_key(browser, live_server, world, tmp_path, demo_case_id):
    """The status endpoint may answer a state the uploader has no text for ("receiving" while the server
    is still storing): the user reads "processing on the server", never ``status_receiving``."""
    _set_zh(world)
    scan = tmp_path / "status.svs"
    scan.write_bytes(b"not a slide, but the bytes travel\n" * 64)
    ctx = browser.new_context(locale="zh-CN")
    try:
        page = login(ctx, live_server, "tech")
        page.route("**/api/v1/upload-status/**", lambda route: route.fulfill(
            status=200, content_type="application/json", body='{"status": "receiving"}'))
        page.goto(f"{live_server}/cases/{demo_case_id}")
        wait_until(page, "window.pathologyUploader")
        page.set_input_files("#upload-app input[type=file]", [str(scan)])
        wait_until(page, "pathologyUploader.uploads[0] && pathologyUploader.uploads[0].serverStatus === 'receiving'", 30)
        text = page.evaluate("pathologyUploader.uploads[0].statusText")
        assert "status_" not in text and text.strip(), text
    finally:
        ctx.close()
