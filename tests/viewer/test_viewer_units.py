"""The viewer's JavaScript unit tests (viewer/test/*.test.js: deep links, measurement) under Node's
own test runner, so `make test` runs them with the rest of the suite."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT, require

pytestmark = pytest.mark.no_database


def test_viewer_javascript_units_pass():
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    tests = sorted(str(p) for p in (ROOT / "viewer" / "test").glob("*.test.js"))
    assert tests, "no viewer unit tests found"
    run = subprocess.run([node, "--test", *tests], cwd=ROOT / "viewer", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
