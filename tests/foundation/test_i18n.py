"""Chinese and English UI: browser default, switching, saved per user, catalogue complete."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_browser_language_is_the_default(client_for):
    c = client_for()
    zh = c.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "登录" in zh and '<html lang="zh-CN">' in zh
    en = c.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert "Log in" in en and "登录" not in en


def test_switch_language_is_remembered_for_the_user(client_for):
    c = client_for("tech")
    assert "Worklist" in c.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    resp = c.post("/lang", data={"lang": "zh_CN", "next": "/", "csrf_token": c.csrf})
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    assert "工作列表" in c.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    # A new session of the same user keeps the saved preference.
    again = client_for("tech")
    assert "工作列表" in again.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)


def test_every_string_has_a_chinese_translation():
    result = subprocess.run([sys.executable, "scripts/i18n.py", "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
