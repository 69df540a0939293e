"""Small helpers for Playwright tests under the app's strict CSP."""

from __future__ import annotations

import os
import time
from pathlib import Path


def wait_until(page, expr: str, timeout: float = 20.0) -> None:
    """Poll with evaluate(): Playwright's wait_for_function uses eval, which the CSP forbids."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if page.evaluate(f"() => Boolean({expr})"):
                return
        except Exception as exc:  # page navigating: try again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {expr} ({last})")


def login(context, base: str, username: str, password: str = "demo-pass-2026"):
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("[data-testid=login-submit]")
    page.wait_for_url(f"{base}/")
    return page


def shots_dir(name: str) -> Path:
    """Where a browser test saves the screenshots a person looks at: ``$HUB_SHOTS_DIR`` if set, else
    ``/work/notes/shots/<name>`` (outside the repository)."""
    return Path(os.environ.get("HUB_SHOTS_DIR", f"/work/notes/shots/{name}"))
