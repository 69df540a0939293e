"""Names the interface shows for things stored as codes: in the reader's language, the code unchanged."""

from __future__ import annotations

from sqlalchemy import update

from pathology_hub.domain import report_codes
from pathology_hub.models import User


def _zh(world):
    world.execute(update(User).values(locale="zh_CN"))
    world.commit()


def test_icd_o_names_follow_the_reader():
    assert report_codes.display_name("ICD-O-3", "8140/3", "Adenocarcinoma, NOS", "zh_CN") == "腺癌，非特指"
    assert report_codes.display_name("ICD-O-3", "8140/3", "Adenocarcinoma, NOS", "en") == "Adenocarcinoma, NOS"
    # a code no longer in the configured list keeps the name it was signed with
    assert report_codes.display_name("ICD-O-3", "9999/9", "Something, NOS", "zh_CN") == "Something, NOS"
    assert all(c.display_zh for c in report_codes.codes()), "every default code has a Chinese name"


def test_code_list_and_annotation_classes_in_chinese(world, client_for):
    _zh(world)
    c = client_for("pathologist")
    codes = {x["code"]: x for x in c.get("/api/v1/report-codes").get_json()["codes"]}
    assert codes["8500/3"]["name"] == "浸润性导管癌，非特指" and codes["8500/3"]["display"] == "Infiltrating duct carcinoma, NOS"
    classes = {x["name"]: x["label"] for x in c.get("/api/v1/annotation-classes").get_json()["classes"]}
    assert classes["tumour"] == "肿瘤" and classes["mitosis"] == "核分裂象"


def test_unknown_page_is_explained_in_chinese(world, client_for):
    _zh(world)
    page = client_for("tech").get("/no/such/page")
    assert page.status_code == 404
    text = page.get_data(as_text=True)
    assert "页面不存在" in text and "The requested URL was not found" not in text
