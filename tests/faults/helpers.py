"""Real HTTP clients for the fault tests: each one a browser-like session with its own cookie jar."""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import requests

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
FORM_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def login_form(base: str) -> tuple[requests.Session, str]:
    """A fresh session that has loaded the login page: (session, its CSRF token)."""
    http = requests.Session()
    page = http.get(f"{base}/login", timeout=30)
    return http, FORM_CSRF_RE.search(page.text).group(1)


def logged_in(base: str, username: str, password: str) -> tuple[requests.Session, str]:
    """A logged-in session and the page CSRF token its API calls send as ``X-CSRFToken``."""
    http, token = login_form(base)
    resp = http.post(f"{base}/login", data={"username": username, "password": password, "csrf_token": token},
                     allow_redirects=False, timeout=30)
    assert resp.status_code == 302, resp.text[:300]
    return http, CSRF_RE.search(http.get(f"{base}/", timeout=30).text).group(1)


def all_at_once(calls: list[Callable[[], object]]) -> list[object]:
    """Run every call on its own thread, released together by a barrier (real parallel requests)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))
