"""End to end in Debian's Chromium: log in, switch language, log out."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_login_switch_language_logout(browser, live_server, world, artifacts):
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{live_server}/")
    assert "/login" in page.url
    page.fill("input[name=username]", "tech")
    page.fill("input[name=password]", "demo-pass-2026")
    page.click("[data-testid=login-submit]")
    page.wait_for_selector("[data-testid=worklist]")
    assert "DEMO-2026-001" in page.content()
    page.click("[data-testid=lang-zh_CN]")
    page.wait_for_selector("text=工作列表")
    page.screenshot(path=str(artifacts / "foundation-worklist-zh.png"), full_page=True)
    page.click("[data-testid=lang-en]")
    page.wait_for_selector("h1:has-text('Worklist')")
    page.click("[data-testid=logout]")
    page.wait_for_selector("[data-testid=login-submit]")
    assert "/login" in page.url
    page.goto(f"{live_server}/api/v1/me")
    assert "login_required" in page.content()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    context.close()
