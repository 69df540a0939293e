"""JSON errors: the ``code`` is stable, the ``message`` is in the user's language (their saved
setting, else the browser's Accept-Language), parameters filled in."""

from __future__ import annotations


def test_not_found_in_chinese_and_english(client_for):
    tech = client_for("tech")
    zh = tech.get("/api/v1/consultations/987654", headers={"Accept-Language": "zh-CN"})
    en = tech.get("/api/v1/consultations/987654", headers={"Accept-Language": "en"})
    assert zh.status_code == en.status_code == 404
    assert zh.json["error"] == {"code": "not_found", "message": "未找到。"}
    assert en.json["error"] == {"code": "not_found", "message": "Not found."}


def test_field_errors_name_the_field_in_the_users_language(client_for, demo_case, users, db):
    tech = client_for("tech")
    url = f"/api/v1/cases/{demo_case.id}/consultations"
    zh = tech.post(url, json={}, headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 422
    assert zh.json["error"]["code"] == "missing_field" and zh.json["error"]["details"] == {"field": "question"}
    assert zh.json["error"]["message"] == "临床问题为必填项。"
    # the user's own setting wins over the browser's language
    users["tech"].locale = "en"
    db.commit()
    en = tech.post(url, json={}, headers={"Accept-Language": "zh-CN"})
    assert en.json["error"]["code"] == "missing_field"
    assert en.json["error"]["message"] == "Clinical question is required."


def test_specimen_line_has_no_stray_separator(client_for, demo_case, db):
    import re
    demo_case.specimen_site = ""
    db.commit()
    page = client_for("tech").get(f"/cases/{demo_case.id}").get_data(as_text=True)
    line = re.search(r"<dd>([^<]*)</dd>", page[page.index("Specimen"):]).group(1)
    assert line.strip() == demo_case.specimen_type and "·" not in line
