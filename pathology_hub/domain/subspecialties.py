"""The controlled vocabulary of pathology subspecialties (消化病理, 乳腺病理, …).

A consultation request names at most one subspecialty and a pathologist profile any
number of them, always by *code*; automatic assignment compares codes, so a request
typed in Chinese and a profile written in English can no longer miss each other.

A network configures its own list by pointing ``SUBSPECIALTIES_FILE`` at a JSON file of
the same shape as ``subspecialties.json``::

    {"subspecialties": [{"code": "gastrointestinal", "zh": "消化病理",
                         "en": "Gastrointestinal pathology", "aliases": ["gi", "消化"]}]}

``aliases`` are optional: they only serve :func:`match_text`, which maps free text written
before the vocabulary existed (migration 0009) onto codes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .errors import ValidationFailed

DEFAULT_FILE = Path(__file__).with_name("subspecialties.json")
CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,47}$")
#: Length of ``users.subspecialties`` (comma-separated codes).
PROFILE_LIMIT = 200


@dataclass(frozen=True)
class Subspecialty:
    code: str
    zh: str
    en: str
    aliases: tuple[str, ...] = ()

    def label(self, locale: str | None) -> str:
        """The label in ``locale`` ("zh", "zh_CN", "zh-CN" → Chinese; anything else English)."""
        return self.zh if (locale or "").lower().startswith("zh") else self.en

    def as_json(self, locale: str | None = None) -> dict[str, str]:
        return {"code": self.code, "label_zh": self.zh, "label_en": self.en, "label": self.label(locale)}


class SubspecialtiesMisconfigured(RuntimeError):
    pass


@lru_cache(maxsize=4)
def _load(path: str, _mtime: float) -> tuple[Subspecialty, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        items = data["subspecialties"] if isinstance(data, dict) else data
        result = tuple(Subspecialty(str(i["code"]).strip(), str(i["zh"]).strip(), str(i["en"]).strip(),
                                    tuple(str(a).strip() for a in i.get("aliases", []) if str(a).strip()))
                       for i in items)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SubspecialtiesMisconfigured(f"SUBSPECIALTIES_FILE {path}: {exc}") from None
    bad = [s.code for s in result if not CODE_RE.match(s.code) or not s.zh or not s.en]
    if bad:
        raise SubspecialtiesMisconfigured(f"SUBSPECIALTIES_FILE {path}: every entry needs a code (lower-case "
                                          f"letters, digits, '_', '.', '-'), a zh and an en label: {bad}")
    codes = [s.code for s in result]
    if len(set(codes)) != len(codes):
        raise SubspecialtiesMisconfigured(f"SUBSPECIALTIES_FILE {path}: duplicate codes")
    return result


def all_subspecialties() -> tuple[Subspecialty, ...]:
    path = os.environ.get("SUBSPECIALTIES_FILE") or str(DEFAULT_FILE)
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        raise SubspecialtiesMisconfigured(f"SUBSPECIALTIES_FILE {path} does not exist") from None
    return _load(path, mtime)


def find(code: str | None) -> Subspecialty | None:
    for s in all_subspecialties():
        if s.code == code:
            return s
    return None


def label(code: str | None, locale: str | None) -> str:
    """The label of ``code``; a value that is not (or no longer) in the list is shown as stored."""
    if not code:
        return ""
    s = find(code)
    return s.label(locale) if s else code


# ---------------------------------------------------------------- validating input
def _unknown(field: str, unknown: list[str]) -> ValidationFailed:
    return ValidationFailed("Unknown subspecialty: %(codes)s. Choose one from the list.",
                            params={"codes": ", ".join(unknown)},
                            code="unknown_subspecialty",
                            details={"field": field, "unknown": unknown,
                                     "allowed": [s.code for s in all_subspecialties()]})


def validate_code(value: Any, field: str = "subspecialty") -> str:
    """One optional code (a request); "" when none.  Unknown codes raise ``unknown_subspecialty``."""
    text = "" if value is None else str(value).strip()
    if not text:
        return ""
    if find(text) is None:
        raise _unknown(field, [text])
    return text


def split_stored(value: str | None) -> list[str]:
    """The codes of a stored profile (``users.subspecialties``: comma-separated)."""
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def validate_codes(value: Any, field: str = "subspecialties") -> str:
    """Codes for a profile, given as a list or a comma-separated string; returns the stored form.

    Order follows the configured list; duplicates collapse; unknown codes raise."""
    if value is None:
        items: list[str] = []
    elif isinstance(value, str):
        items = split_stored(value)
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value if str(v).strip()]
    else:
        raise ValidationFailed("subspecialties must be a list of codes.", code="invalid_field",
                               details={"field": field})
    unknown = [v for v in dict.fromkeys(items) if find(v) is None]
    if unknown:
        raise _unknown(field, unknown)
    wanted = set(items)
    stored = ",".join(s.code for s in all_subspecialties() if s.code in wanted)
    if len(stored) > PROFILE_LIMIT:
        raise ValidationFailed("Too many subspecialties for one profile.", code="field_too_long",
                               details={"field": field})
    return stored


# ---------------------------------------------------------------- free text written before the vocabulary
def _norm(text: str) -> str:
    return re.sub(r"[\s_\-&/·,，、]+", " ", text.strip().lower()).strip()


def match_text(text: str | None, items: Iterable[Subspecialty] | None = None) -> str | None:
    """The code meant by free text: a code, a zh/en label or an alias (case and spacing ignored).

    "消化病理", "GI", "Gastrointestinal" → "gastrointestinal"; unknown text → None."""
    if not text or not text.strip():
        return None
    wanted = _norm(text)
    for s in items if items is not None else all_subspecialties():
        names = (s.code, s.zh, s.en, *s.aliases)
        if wanted in {_norm(n) for n in names}:
            return s.code
    return None
