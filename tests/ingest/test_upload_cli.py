"""`flask upload` from a scanner workstation: real HTTP on loopback, tuspy, API token."""

from __future__ import annotations

import shutil

from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus


def _token(app) -> str:
    result = app.test_cli_runner().invoke(args=["users", "token", "tech", "--name", "scanner"])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def test_upload_files_to_a_case(app, world, live_server, synthetic_slide):
    token = _token(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["upload", "--server", live_server, "--token", token, "--case", "DEMO-2026-001",
                                 "--chunk-size", "1", str(synthetic_slide)])
    assert result.exit_code == 0, result.output
    assert "uploaded synthetic-he.svs" in result.output
    world.expire_all()
    slide = world.scalars(select(Slide)).one()
    assert slide.status is SlideStatus.READY


def test_clear_errors(app, world, live_server, synthetic_slide):
    runner = app.test_cli_runner()
    r = runner.invoke(args=["upload", "--server", live_server, "--token", "phk_nope", "--case", "DEMO-2026-001",
                            str(synthetic_slide)])
    assert r.exit_code == 2 and "token was refused" in r.output
    r = runner.invoke(args=["upload", "--server", live_server, "--token", _token(app), "--case", "NO-SUCH",
                            str(synthetic_slide)])
    assert r.exit_code == 2 and "No case NO-SUCH" in r.output


def test_watch_folder_uploads_by_file_name(app, world, live_server, synthetic_slide, tmp_path):
    folder = tmp_path / "scanner"
    folder.mkdir()
    shutil.copy(synthetic_slide, folder / "DEMO-2026-001_block-A1.svs")
    (folder / "notes.txt").write_text("not a slide for any case")
    runner = app.test_cli_runner()
    args = ["upload", "--server", live_server, "--token", _token(app), "--watch", str(folder),
            "--case-from-filename", r"^(?P<case>DEMO-\d+-\d+)_", "--once"]
    r = runner.invoke(args=args)
    assert r.exit_code == 0, r.output
    assert "uploaded DEMO-2026-001_block-A1.svs" in r.output and "skipped notes.txt" in r.output
    # A second pass remembers what was done and uploads nothing again.
    r = runner.invoke(args=args)
    assert "uploaded" not in r.output
    world.expire_all()
    assert len(world.scalars(select(Slide)).all()) == 1
