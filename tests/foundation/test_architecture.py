"""Import direction: web -> domain -> models/storage/tiling/slides/uploads/reporting, never back.

Read from the source with ``ast`` (no module is executed, so the whole check takes a
fraction of a second). Imports inside functions count too: a function-level import is
still a dependency, it only hides it from a reader. The layers are described in
docs/architecture.md; wiring (``app``, ``bootstrap``, ``cli``, ``tasks``, ``upload_server``)
sits on top and may import anything.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[2]

#: Layers below the domain: they know nothing of rules, of Flask or of the wiring.
LOWER = ("pathology_hub.models", "pathology_hub.storage", "pathology_hub.tiling", "pathology_hub.slides",
         "pathology_hub.uploads", "pathology_hub.reporting", "storage")
#: The wiring: composes the layers, so no layer may import it.
WIRING = ("pathology_hub.app", "pathology_hub.bootstrap", "pathology_hub.cli", "pathology_hub.cli_audit",
          "pathology_hub.cli_storage", "pathology_hub.tasks", "pathology_hub.upload_server",
          "pathology_hub.demo", "pathology_hub.queue")
FLASK = ("flask", "flask_babel", "flask_login", "flask_wtf", "werkzeug", "pathology_hub.extensions")

#: ``domain/errors.py`` is the shared vocabulary of refusals (status, code, message) and imports
#: nothing of the domain; the PDF figure builder raises those errors so the web layer renders them alike.
LOWER_MAY_IMPORT = {"pathology_hub.domain.errors"}

#: Web modules that may import models or open database sessions themselves: none (issue #17:
#: a handler calls one domain function, which owns its unit of work). Keep both sets empty.
WEB_MODELS_ALLOWED: set[str] = set()
WEB_SESSIONS_ALLOWED: set[str] = set()
SESSION_NAMES = {"SessionLocal", "session_scope", "independent_session"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("pathology_hub", "storage"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


MODULES = _modules()


@functools.lru_cache(maxsize=None)
def _imports(name: str, path: Path) -> list[tuple[str, set[str], int]]:
    """(imported module, names taken from it, line) for every import in the file, at any depth.

    Imports under ``if TYPE_CHECKING:`` are left out: they name types for annotations and
    never run, so they create no dependency at run time."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    type_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                 for stmt in block.body for n in ast.walk(stmt)}
    out = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, set(), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = {a.name for a in node.names}
            out.append((target, names, node.lineno))
            # ``from . import web`` names a module: count it as one
            out += [(f"{target}.{n}", set(), node.lineno) for n in names if f"{target}.{n}" in MODULES]
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _under(module: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(source_prefixes: tuple[str, ...], forbidden: tuple[str, ...],
                allowed: set[str] = frozenset()) -> list[str]:
    bad = []
    for name, path in sorted(MODULES.items()):
        if not _under(name, source_prefixes):
            continue
        for target, _names, line in _imports(name, path):
            if _under(target, forbidden) and target not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return sorted(set(bad))


def test_domain_imports_neither_flask_nor_web_nor_wiring():
    assert _violations(("pathology_hub.domain",), ("pathology_hub.web",) + WIRING + FLASK) == []


def test_lower_layers_import_neither_domain_nor_web_nor_flask():
    forbidden = ("pathology_hub.domain", "pathology_hub.web") + WIRING + FLASK
    assert _violations(LOWER, forbidden, LOWER_MAY_IMPORT) == []


def test_package_root_does_not_import_flask():
    """``import pathology_hub.slides.probe`` (the sandboxed child) must not pay for the web application."""
    root = MODULES["pathology_hub"]
    assert not [t for t, _n, _l in _imports("pathology_hub", root) if _under(t, FLASK + ("pathology_hub.web",))]


def test_web_does_not_reach_past_the_domain():
    """Handlers call domain functions; models and sessions stay below (a shrinking list of exceptions)."""
    models, sessions = [], []
    for name, path in sorted(MODULES.items()):
        if not _under(name, ("pathology_hub.web",)):
            continue
        for target, names, line in _imports(name, path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if _under(target, ("pathology_hub.models",)) and name not in WEB_MODELS_ALLOWED:
                models.append(f"{where} imports {target}")
            if target == "pathology_hub.db" and names & SESSION_NAMES and name not in WEB_SESSIONS_ALLOWED:
                sessions.append(f"{where} opens sessions ({', '.join(sorted(names & SESSION_NAMES))})")
    assert models == [] and sessions == []


def test_exception_lists_only_shrink():
    """An entry that no longer needs its exception must leave the list (so the list tells the truth)."""
    def uses(name: str, pred) -> bool:
        return any(pred(t, n) for t, n, _l in _imports(name, MODULES[name]))
    stale_models = [m for m in WEB_MODELS_ALLOWED
                    if m not in MODULES or not uses(m, lambda t, n: _under(t, ("pathology_hub.models",)))]
    stale_sessions = [m for m in WEB_SESSIONS_ALLOWED
                      if m not in MODULES or not uses(m, lambda t, n: t == "pathology_hub.db" and n & SESSION_NAMES)]
    assert stale_models == [] and stale_sessions == []


def test_the_checker_sees_relative_and_function_level_imports(tmp_path):
    """The AST walk must find what a cycle-dodging import hides inside a function."""
    name, path = "pathology_hub.domain.jobs", MODULES["pathology_hub.domain.jobs"]
    found = {t for t, _n, _l in _imports(name, path)}
    assert "pathology_hub.models" in found
    fake = tmp_path / "x.py"
    fake.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flask import Flask\n"
                    "def f():\n    from ..web import api\n    from . import policy\n")
    found = {t for t, _n, _l in _imports("pathology_hub.domain.x", fake)}
    assert found >= {"pathology_hub.web", "pathology_hub.domain"} and "flask" not in found  # annotations only


# ---------------------------------------------------------------- wiring in one place
_WIRING_STATE = """
import json, sys
for name in sys.argv[1:]:
    __import__(name)
from pathology_hub.domain import jobs, notifications, policy, tile_render
def state():
    q = lambda fns: sorted(f"{f.__module__}.{f.__qualname__}" for f in fns)
    return {"grants": q(policy._CASE_ACCESS_GRANTS), "report_signed": q(policy._REPORT_SIGNED),
            "actions": policy.actions(), "handlers": sorted(jobs._HANDLERS),
            "failure_hooks": sorted(jobs._FAILURE_HOOKS), "ports": [bool(jobs._ENQUEUE),
            bool(notifications._DISPATCH), bool(tile_render._REQUEST)], "flask": "flask" in sys.modules}
before = state()
from pathology_hub import bootstrap
bootstrap.wire()
print(json.dumps({"before": before, "after": state()}))
"""


def _wiring_states(tmp_path, *import_lists: tuple[str, ...]) -> list[dict]:
    """Run the probe script once per import list, in fresh interpreters side by side."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "INSTANCE_PATH": str(tmp_path),
           "QUEUE_URL": f"sqlite:///{tmp_path / 'q.db'}", "STORAGE_URL": f"file://{tmp_path / 'objects'}"}
    procs = [subprocess.Popen([sys.executable, "-c", _WIRING_STATE, *imports], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for imports in import_lists]
    states = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        states.append(json.loads(out.strip().splitlines()[-1]))
    return states


def test_policy_and_jobs_answer_the_same_whatever_was_imported(tmp_path):
    """Importing a domain module registers nothing; after ``bootstrap.wire()`` every rule,
    grant, job handler and port is in place, whichever modules were loaded first."""
    bare, loaded = _wiring_states(tmp_path, ("pathology_hub.domain.policy",),
                                  ("pathology_hub.domain.reports", "pathology_hub.domain.consultations",
                                   "pathology_hub.domain.slides", "pathology_hub.domain.jobs"))
    assert loaded["before"]["grants"] == [] and loaded["before"]["report_signed"] == []
    assert loaded["before"]["handlers"] == [] and loaded["before"]["ports"] == [False, False, False]
    assert bare["after"] == loaded["after"]
    after = bare["after"]
    assert after["grants"] == ["pathology_hub.domain.consultations.case_access_grant"]
    assert after["report_signed"] == ["pathology_hub.domain.reports.reading.case_report_signed"]
    assert after["handlers"] == ["frozen_sms", "hl7_send", "ingest", "tile"]
    assert after["failure_hooks"] == ["frozen_sms", "hl7_send", "ingest", "tile"]
    assert after["ports"] == [True, True, True]
    assert after["flask"] is False  # the worker's wiring needs no web framework


def test_the_sandboxed_probe_loads_no_web_framework(tmp_path):
    """``python -m pathology_hub.slides.probe`` (sandbox.py) runs without Flask: the package root is empty."""
    out = subprocess.run([sys.executable, "-c", "import sys, pathology_hub.slides.probe; "
                          "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
