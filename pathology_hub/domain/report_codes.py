"""The configurable list of diagnosis codes offered in the report editor.

A network chooses its coding system (ICD-O-3 morphology by default, SNOMED CT or a
local list) by pointing ``REPORT_CODES_FILE`` at a JSON file of the same shape as
``report_codes.json``; a report can only carry a code from that list, so the FHIR
export never invents a coding.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_FILE = Path(__file__).with_name("report_codes.json")


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str
    display_zh: str = ""  # the name Chinese pages show; empty: the list has none, show ``display``

    def as_json(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}

    def name_in(self, locale: str) -> str:
        """The display name for a reader of ``locale`` ("zh_CN", "en"); the stored code never changes."""
        return self.display_zh if locale.startswith("zh") and self.display_zh else self.display


class CodesMisconfigured(RuntimeError):
    pass


@lru_cache(maxsize=4)
def _load(path: str, _mtime: float) -> tuple[Code, ...]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        items = data["codes"] if isinstance(data, dict) else data
        codes = tuple(Code(str(i["system"]).strip(), str(i["code"]).strip(), str(i["display"]).strip(),
                           str(i.get("display_zh") or "").strip()) for i in items)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CodesMisconfigured(f"REPORT_CODES_FILE {path}: {exc}") from None
    if any(not c.system or not c.code for c in codes):
        raise CodesMisconfigured(f"REPORT_CODES_FILE {path}: every code needs a system and a code")
    return codes


def codes() -> tuple[Code, ...]:
    path = os.environ.get("REPORT_CODES_FILE") or str(DEFAULT_FILE)
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        raise CodesMisconfigured(f"REPORT_CODES_FILE {path} does not exist") from None
    return _load(path, mtime)


def find(code: str, system: str = "") -> Code | None:
    for c in codes():
        if c.code == code and (not system or c.system == system):
            return c
    return None


def display_name(system: str, code: str, stored: str, locale: str) -> str:
    """The name of a code as a reader of ``locale`` reads it.

    A report stores the display name it was signed with (``stored``); pages show the list's name in
    the reader's language when the code is (still) in the list, else the stored one."""
    try:
        found = find(code, system)
    except CodesMisconfigured:
        found = None
    return found.name_in(locale) if found else stored
