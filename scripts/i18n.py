#!/usr/bin/env python3
"""Maintain the zh-CN catalogue: extract, merge, and report untranslated strings.

Usage: scripts/i18n.py update   (extract + merge into messages.po)
       scripts/i18n.py compile  (write .mo files; run by make)
       scripts/i18n.py check    (exit 1 when a string lacks a translation)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "pathology_hub" / "translations"
POT = ROOT / "instance" / "messages.pot"
BABEL = [sys.executable, "-m", "babel.messages.frontend"]


def run(*args: str) -> None:
    result = subprocess.run([*BABEL, *args], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode)


#: Domain errors are raised with an English message id as first argument (parameters apart):
#: extracting those calls puts every literal error message into the catalogue.
ERROR_CLASSES = ("DomainError", "ValidationFailed", "NotFound", "Forbidden", "Conflict", "AuthenticationFailed",
                 "TooLarge", "NotReadyYet", "JsonTooDeep", "TooManyOpenUploads", "WrongPassword", "SignerLocked",
                 "ReportSigned", "ResultVersionOutdated", "NoSignedResult", "SlideLocked", "VersionRequired",
                 "ReportIntegrityFailed")


def extract() -> None:
    POT.parent.mkdir(parents=True, exist_ok=True)
    keywords = [arg for name in ("_l", "NP_:1c,2", "lazy_pgettext:1c,2", *ERROR_CLASSES) for arg in ("-k", name)]
    run("extract", "-F", "babel.cfg", *keywords, "--no-location", "-o", str(POT), ".")


def main(cmd: str) -> int:
    if cmd == "update":
        extract()
        run("update", "-i", str(POT), "-d", str(TRANSLATIONS), "--no-fuzzy-matching")
    elif cmd == "compile":
        run("compile", "-d", str(TRANSLATIONS))
    elif cmd == "check":
        from babel.messages.pofile import read_po
        extract()
        with open(POT, "rb") as fh:
            template = read_po(fh)
        missing = []
        for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
            with open(po, "rb") as fh:
                catalog = read_po(fh)
            for msg in template:
                found = catalog.get(msg.id, msg.context)
                if msg.id and (found is None or not found.string):
                    missing.append(f"{po.parent.parent.name}: {msg.id}")
        for line in missing:
            print("untranslated", line)
        return 1 if missing else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
