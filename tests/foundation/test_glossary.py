"""The zh-CN catalogue follows docs/glossary.md: one Chinese term per concept, everywhere.

The glossary's table is the source: a word in its "Not used" column may appear in no
translation, and each listed catalogue id must be translated with exactly the chosen term."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
PO = ROOT / "pathology_hub" / "translations" / "zh" / "LC_MESSAGES" / "messages.po"


def glossary_rows() -> list[dict[str, object]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("Concept", "") or set(cells[0]) <= {"-"}:
            continue
        rows.append({"concept": cells[0], "term": cells[2],
                     "forbidden": [w.strip() for w in cells[3].split(",") if w.strip()],
                     "ids": [w.strip() for w in cells[4].split(",") if w.strip()]})
    return rows


def translations() -> list[tuple[str, str]]:
    with open(PO, "rb") as fh:
        catalog = read_po(fh)
    out = []
    for m in catalog:
        if not m.id:
            continue
        strings = m.string if isinstance(m.string, (list, tuple)) else [m.string]
        msgid = m.id[0] if isinstance(m.id, (list, tuple)) else m.id
        key = f"{m.context}::{msgid}" if m.context else msgid
        out += [(key, s) for s in strings if s]
    return out


def test_glossary_has_the_standard_terms():
    terms = {r["term"] for r in glossary_rows()}
    for term in ("冰冻切片", "免疫组化", "更正报告", "补充报告", "会诊意见", "初步意见", "切片", "全切片图像",
                 "签发", "会签", "转诊", "危急值"):
        assert term in terms, term


def test_no_translation_uses_a_variant_the_glossary_rejects():
    rows = glossary_rows()
    offences = [f"{msgid!r} -> {text!r} uses {word!r} (glossary: {row['term']})"
                for msgid, text in translations() for row in rows for word in row["forbidden"]
                if word in text and row["term"] not in text.replace(word, "")]
    assert not offences, "\n".join(offences)


def test_glossary_ids_are_translated_with_the_chosen_term():
    catalog = dict(translations())
    wrong = [f"{msgid!r} -> {catalog.get(msgid)!r}, expected {row['term']!r}"
             for row in glossary_rows() for msgid in row["ids"] if catalog.get(msgid) != row["term"]]
    assert not wrong, "\n".join(wrong)
