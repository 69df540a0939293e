"""Every error code raised anywhere has an entry in the one error catalogue, translated into Chinese.

The source is walked (AST), so a new ``raise Conflict(..., code="new_code")`` or a new error
class without a catalogue entry fails here, not in front of a Chinese user."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flask_babel import force_locale

from pathology_hub import catalogue
from pathology_hub.slides import errors as reject
from pathology_hub.web import error_messages, slide_text

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*(ROOT / "pathology_hub").rglob("*.py"), *(ROOT / "storage").rglob("*.py")]
ERROR_CALLS = {"DomainError", "ValidationFailed", "NotFound", "Forbidden", "Conflict", "AuthenticationFailed",
               "TooLarge", "NotReadyYet", "JsonTooDeep", "TooManyOpenUploads", "WrongPassword", "SignerLocked",
               "ReportSigned", "ResultVersionOutdated", "NoSignedResult", "SlideLocked", "VersionRequired"}


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def raised_codes() -> dict[str, str]:
    """code -> where it is raised: ``code="…"`` keywords, ``UploadRefused(status, "code", …)`` and
    ``code = "…"`` in error classes."""
    found: dict[str, str] = {}
    for path in SOURCES:
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = _name(node.func)
                if name in ("render_template", "url_for", "redirect"):
                    continue
                for kw in node.keywords:
                    if kw.arg == "code" and _literal(kw.value):
                        found.setdefault(kw.value.value, f"{where}:{node.lineno}")
                if (name in ("UploadRefused", "_error", "_fail", "error_response") and len(node.args) >= 2
                        and _literal(node.args[1])):
                    found.setdefault(node.args[1].value, f"{where}:{node.lineno}")
            elif isinstance(node, ast.ClassDef) and any(
                    _name(b).endswith(("Error", "Failed", "Found", "Forbidden", "Conflict", "Large", "Yet",
                                       "Deep", "Uploads", "Password", "Locked", "Signed", "Outdated", "Result",
                                       "Required", "Unavailable", "Key", "Misconfigured")) for b in node.bases):
                for stmt in node.body:
                    if (isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "code" for t in stmt.targets)
                            and _literal(stmt.value)):
                        found.setdefault(stmt.value.value, f"{where}:{node.lineno}")
    return found


def raised_messages() -> list[tuple[str, str]]:
    """Literal English messages of domain errors (first argument), with where they are raised."""
    out = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in ERROR_CALLS and node.args:
                text = _literal(node.args[0])
                if text:
                    out.append((text, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return out


def test_the_walk_finds_the_codes_it_must():
    codes = raised_codes()
    # one of each kind: a keyword, an error class attribute, a tus refusal, a storage error class
    for code in ("slides_not_ready", "invalid_transition", "offset_mismatch", "object_not_found", "invalid_password",
                 "rate_limited"):
        assert code in codes, code


def test_every_raised_code_has_a_catalogue_entry():
    missing = {code: where for code, where in raised_codes().items() if code not in error_messages.CODE_MESSAGES}
    assert not missing, f"add these codes to pathology_hub/web/error_messages.py: {missing}"


def test_every_catalogue_entry_is_translated_into_chinese(app):
    untranslated = []
    with app.test_request_context():
        for code, template in error_messages.CODE_MESSAGES.items():
            with force_locale("en"):
                english = str(template)
            with force_locale("zh_CN"):
                chinese = str(template)
            if chinese == english or not any("\u4e00" <= ch <= "\u9fff" for ch in chinese):
                untranslated.append(code)
    assert not untranslated, untranslated


def test_every_literal_domain_error_message_is_in_the_catalogue():
    """Raise sites keep their exact wording in Chinese too (the message id itself is translated)."""
    missing = [f"{where}: {text!r}" for text, where in raised_messages() if not catalogue.has_translation("zh", text)]
    assert not missing, "\n".join(missing)


def test_every_ingest_rejection_reason_has_a_translated_label(app):
    with app.test_request_context(), force_locale("zh_CN"):
        for code in reject.ALL_CODES:
            label = slide_text.reason_label(code)
            assert label != code and any("\u4e00" <= ch <= "\u9fff" for ch in label), code


def test_every_stain_category_has_a_translated_label(app):
    """The web names the categories by their stored values (it does not import the models):
    a category added to the model without a label here must fail."""
    from pathology_hub.domain import slide_facts
    assert set(slide_text.STAIN_CATEGORY_LABELS) == set(slide_facts.STAIN_CATEGORIES)
    with app.test_request_context(), force_locale("zh_CN"):
        for value in slide_facts.STAIN_CATEGORIES:
            label = slide_text.stain_category_label(value)
            assert label != value and any("\u4e00" <= ch <= "\u9fff" for ch in label), value


@pytest.mark.parametrize("locale, expected", [("zh_CN", "会诊当前为“已撤销”状态，无法执行“分配”。"),
                                              ("en", "“Assign” is not possible while the consultation is cancelled.")])
def test_parameters_are_rendered_in_the_readers_language(app, locale, expected):
    from pathology_hub.domain.errors import Conflict
    exc = Conflict("Cannot %(transition_words)s a consultation that is %(state_words)s.", code="invalid_transition",
                   params={"transition_words": "assign", "state_words": "cancelled"},
                   details={"state": "cancelled", "transition": "assign"})
    assert exc.message == "Cannot assign a consultation that is cancelled."  # logs, CLI: English
    with app.test_request_context(), force_locale(locale):
        assert error_messages.message_of(exc) == expected
