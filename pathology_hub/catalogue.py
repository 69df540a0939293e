"""The one translation catalogue (pathology_hub/translations, Babel/gettext), usable anywhere.

Pages use it through Flask-Babel; code that runs without a request (the e-mail sender in the
worker, the PDF renderer, the CLI) loads the same compiled catalogue here and renders a
message id in an explicit language: the recipient's, or the report's. There is no second
dictionary of translations anywhere in the code base: a text that people read is a message
id marked with ``N_`` / ``_`` / ``_l`` and translated in ``messages.po``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from babel.support import NullTranslations, Translations

TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
#: The language used when a person has not chosen one (the users are Chinese).
DEFAULT_LANGUAGE = "zh"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark ``message`` for extraction into the catalogue; it is translated where it is shown."""
    return message


def NP_(context: str, message: str) -> tuple[str, str]:  # noqa: N802
    """Mark ``message`` with a disambiguating ``context`` (gettext msgctxt; "" for none)."""
    return context, message


def language_of(locale: str | None) -> str:
    """``"en"`` or ``"zh"`` for any locale spelling (``zh_CN``, ``zh-CN``, ``en_GB``, None → default)."""
    value = (locale or "").lower()
    if value.startswith("en"):
        return "en"
    if value.startswith("zh"):
        return "zh"
    return DEFAULT_LANGUAGE


@functools.lru_cache(maxsize=8)
def translations(locale: str | None) -> NullTranslations:
    """The compiled catalogue of a language (English is the message ids themselves)."""
    if language_of(locale) == "en":
        return NullTranslations()
    return Translations.load(str(TRANSLATIONS_DIR), ["zh"])


def has_translation(locale: str | None, message: str) -> bool:
    """Whether ``message`` is a catalogue entry translated for ``locale`` (English: always)."""
    if language_of(locale) == "en":
        return True
    catalog = getattr(translations(locale), "_catalog", {})
    return bool(catalog.get(message))


class _Blank(dict):
    """Format parameters where a missing one prints as nothing rather than failing."""

    def __missing__(self, key: str) -> str:
        return ""


def render(locale: str | None, message: str, *, context: str = "", **params: Any) -> str:
    """``message`` (in ``context``, if any) translated into ``locale`` with ``%(name)s`` parameters."""
    t = translations(locale)
    text = t.pgettext(context, message) if context else t.gettext(message)
    if not params:
        return text
    for candidate in (text, message):  # a broken translation must not hide the message
        try:
            return candidate % _Blank(params)
        except (TypeError, ValueError):
            continue
    return text


def reset_cache() -> None:
    """Forget loaded catalogues (after ``scripts/i18n.py compile`` in a long-lived process)."""
    translations.cache_clear()
