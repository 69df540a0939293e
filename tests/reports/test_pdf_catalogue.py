"""The report PDF takes its words from the catalogue, in the report's language, and lays
figures out as a reader expects: the "Figures" heading never alone at a page bottom, a
caption's own number not printed twice."""

from __future__ import annotations

import re
from types import SimpleNamespace

from pathology_hub import catalogue
from pathology_hub.domain.report_documents import report_language
from pathology_hub.reporting import pdf as pdf_module
from pathology_hub.reporting.document import Figure
from pathology_hub.reporting.pdf import caption_text, render_report_pdf
from tests.reports.test_pdf_render import figure_png, pdftotext, sample_document


def test_labels_are_catalogue_entries_in_the_reports_language():
    assert not hasattr(pdf_module, "LABELS")  # no hand-kept dictionary of translations
    zh, en = pdf_module.labels_for("zh"), pdf_module.labels_for("en")
    assert zh["amendment"] == "更正报告" == catalogue.render("zh", "amendment")  # the web UI's word too
    assert en["amendment"] == "amendment"
    assert zh.fmt("footer", case="C-1", n=2, x=1, y=3) == "C-1 · 第 2 版 · 第 1 页，共 3 页"
    for key in pdf_module.LABEL_IDS:
        assert re.search(r"[\u4e00-\u9fff]", zh[key]) or key in ("stain_ihc",), key


def test_caption_numbers_typed_by_the_author_are_not_repeated():
    assert caption_text("图1：浸润癌巢") == "浸润癌巢"
    assert caption_text("Figure 2. Ki-67 hot spot") == "Ki-67 hot spot"
    assert caption_text("Fig 3 - margin") == "margin"
    assert caption_text("图像显示癌巢") == "图像显示癌巢"  # a word, not a number
    assert caption_text("2 foci of invasion") == "2 foci of invasion"


def test_figure_captions_print_one_number(tmp_path):
    figs = (Figure(figure_png(), "图1：浸润性导管癌", "https://x/v?slide=1", "A1", "20×"),)
    flat = re.sub(r"\s+", "", pdftotext(tmp_path, render_report_pdf(sample_document(figures=figs))))
    assert "图1.浸润性导管癌" in flat and "图1：" not in flat


def test_section_headings_are_bilingual_on_a_chinese_report_only(tmp_path):
    zh = re.sub(r"\s+", " ", pdftotext(tmp_path, render_report_pdf(sample_document())))
    en = re.sub(r"\s+", " ", pdftotext(tmp_path, render_report_pdf(sample_document(language="en"))))
    assert "患者与病例 Patient and case" in zh and "签名清单 Signature manifest" in zh
    assert "Patient and case" in en and "患者与病例" not in en


def test_figures_heading_stays_with_the_first_figure(tmp_path):
    """Whatever the length of the text before it, "图像" is on the page of figure 1."""
    figs = tuple(Figure(figure_png(), f"field {i}", "https://x/v") for i in (1, 2))
    for lines in range(0, 60, 6):
        history = "\n".join(f"病史第 {i} 行 history line {i}" for i in range(lines))
        text = pdftotext(tmp_path, render_report_pdf(sample_document(figures=figs, clinical_history=history)))
        pages = text.split("\f")
        heading = next(i for i, p in enumerate(pages) if re.search(r"图像\s*Figures", p))
        first = next(i for i, p in enumerate(pages) if re.search(r"图\s*1\.\s*field 1", p))
        assert heading == first, f"{lines} lines: heading on page {heading + 1}, figure 1 on page {first + 1}"


def test_report_language_is_the_referring_institutions_setting():
    def consultation(language):
        return SimpleNamespace(case=SimpleNamespace(institution=SimpleNamespace(report_language=language)))
    assert report_language(consultation("en")) == "en"
    assert report_language(consultation("zh")) == "zh"
    assert report_language(consultation(None)) == "zh"
