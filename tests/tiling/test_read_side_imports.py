"""The read side of tiling never loads the build side.

Every web process serves tiles through :mod:`pathology_hub.tiling.reader`; the build side
(:mod:`pathology_hub.tiling.pipeline`, :mod:`~pathology_hub.tiling.render`,
:mod:`~pathology_hub.tiling.source` with OpenSlide and a process pool) belongs on workers.  Key
and manifest names come from :mod:`pathology_hub.tiling.layout`, so importing a reader must not
drag the pipeline in.  Each check runs in a fresh interpreter, where ``sys.modules`` shows exactly
what one import loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_SIDE = ("openslide", "pathology_hub.tiling.pipeline", "pathology_hub.tiling.render",
              "pathology_hub.tiling.source")


def _loaded_after(statement: str) -> dict[str, bool]:
    code = (f"import json, sys\n{statement}\n"
            f"print(json.dumps({{name: name in sys.modules for name in {list(BUILD_SIDE)!r}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("statement", [
    "import pathology_hub.tiling.reader",
    "from pathology_hub.tiling import PyramidReader, TileNotFound, validate_address",
    "import pathology_hub.web.tile_fastpath",
])
def test_read_side_imports_load_no_build_side(statement):
    loaded = _loaded_after(statement)
    assert not any(loaded.values()), f"{statement!r} loaded {[n for n, v in loaded.items() if v]}"


def test_build_side_names_still_import_from_the_package():
    """The lazy package attributes resolve (and do load the build side, which proves the check above can fail)."""
    loaded = _loaded_after("from pathology_hub.tiling import build_pyramid, render_tile, DEFAULT_QUALITY")
    assert loaded["pathology_hub.tiling.pipeline"] and loaded["openslide"]


@pytest.mark.parametrize("module", ["reader.py", "layout.py", "pack.py", "pack_cache.py", "geometry.py",
                                    "errors.py"])
def test_read_side_modules_do_not_name_the_build_side(module):
    """Also at source level, including imports inside functions, which a fresh import would not run."""
    tree = ast.parse((ROOT / "pathology_hub" / "tiling" / module).read_text(encoding="utf-8"))
    named = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            named.add(("." * node.level) + (node.module or ""))
            named.update(("." * node.level) + alias.name for alias in node.names if not node.module)
        elif isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
    forbidden = {".pipeline", ".render", ".source", "openslide", "pathology_hub.tiling.pipeline",
                 "pathology_hub.tiling.render", "pathology_hub.tiling.source"}
    assert not named & forbidden, f"{module} imports {sorted(named & forbidden)}"


def test_pyramid_keys_are_spelt_only_in_layout():
    """``pyramids/`` is typed out in one module; everyone else asks :mod:`pathology_hub.tiling.layout`."""
    offenders = []
    for path in (ROOT / "pathology_hub").rglob("*.py"):
        if path.name == "layout.py" and path.parent.name == "tiling":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("pyramids/"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                    and str(node.values[0].value).startswith("pyramids/"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
