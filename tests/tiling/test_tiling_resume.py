"""SIGKILL in the middle of a build, resume, and end byte-identical to an uninterrupted build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pathology_hub.tiling import PyramidReader, build_pyramid

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import sys, time, storage
    from pathology_hub.tiling import build_pyramid

    def progress(p):
        if p.phase == "levels":
            print("PACK", p.tiles_done, flush=True)
            time.sleep(0.5)  # give the parent time to kill us between packs

    build_pyramid(sys.argv[1], storage.open_store(sys.argv[2]), "p/killed", workers=1, progress=progress)
    print("FINISHED", flush=True)
""")


def test_sigkill_and_resume_is_byte_identical(multiblock_slide, store, tmp_path):
    url = f"file://{tmp_path / 'objects'}"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(multiblock_slide), url],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    packs_seen = 0
    for line in proc.stdout:
        if line.startswith("PACK"):
            packs_seen += 1
            if packs_seen == 2:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not store.exists("p/killed/manifest.json")  # a killed build never looks complete
    assert store.exists("p/killed/manifest.preview.json")

    resumed = build_pyramid(str(multiblock_slide), store, "p/killed", workers=1)
    assert resumed.packs_skipped >= 2 and resumed.packs_written >= 1
    clean = build_pyramid(str(multiblock_slide), store, "p/clean", workers=2)
    a, b = PyramidReader(store, "p/killed"), PyramidReader(store, "p/clean")
    g = a.geometry
    for level in range(g.level_count):
        cols, rows = g.level_tiles(level)
        for col in range(cols):
            for row in range(rows):
                assert a.tile(level, col, row) == b.tile(level, col, row), (level, col, row)
    assert clean.tiles_total == resumed.tiles_total
