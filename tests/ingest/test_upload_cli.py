"""`flask upload` from a scanner workstation: real HTTP on loopback, tuspy, API token."""

from __future__ import annotations

import shutil

import pytest

from sqlalchemy import select

from pathology_hub.models import Slide, SlideStatus

# The command-line client over HTTP: its database use is the server's ordinary upload path, which
# tests/ingest covers on PostgreSQL; run once (SQLite pass).
pytestmark = pytest.mark.single_pass


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


def _junk(path):
    """Bytes that are no slide at all, under a slide's extension: the server accepts the upload and
    rejects the file only when it inspects it, after the last chunk."""
    path.write_bytes(b"this is not a whole-slide image\n" * 4096)
    return path


def test_rejected_file_exits_non_zero_with_the_servers_code(app, world, live_server, tmp_path):
    junk = _junk(tmp_path / "junk.svs")
    r = app.test_cli_runner().invoke(args=["upload", "--server", live_server, "--token", _token(app),
                                           "--case", "DEMO-2026-001", str(junk)])
    assert r.exit_code == 1, r.output
    world.expire_all()
    rejected = world.scalars(select(Slide)).one()
    assert rejected.status is SlideStatus.REJECTED and rejected.reject_code
    assert "rejected junk.svs to case DEMO-2026-001" in r.output
    assert f"{rejected.reject_code}: {rejected.reject_message}" in r.output
    assert "1 file(s): 1 rejected" in r.output
    assert "uploaded junk.svs" not in r.output


@pytest.mark.slow  # ~10 s: the good file is tiled
def test_watch_logs_a_rejection_and_goes_on(app, world, live_server, synthetic_slide, tmp_path):
    folder = tmp_path / "scanner"
    folder.mkdir()
    _junk(folder / "DEMO-2026-001_block-A0.svs")
    shutil.copy(synthetic_slide, folder / "DEMO-2026-001_block-A1.svs")
    args = ["upload", "--server", live_server, "--token", _token(app), "--watch", str(folder),
            "--case-from-filename", r"^(?P<case>DEMO-\d+-\d+)_", "--once"]
    r = app.test_cli_runner().invoke(args=args)
    assert r.exit_code == 0, r.output
    assert "rejected DEMO-2026-001_block-A0.svs" in r.output
    assert "uploaded DEMO-2026-001_block-A1.svs" in r.output and "accepted (ready)" in r.output
    r = app.test_cli_runner().invoke(args=args)  # the rejected file is not sent again
    assert "DEMO-2026-001_block-A0.svs" not in r.output
    world.expire_all()
    assert len(world.scalars(select(Slide)).all()) == 2


def test_verdict_wait_is_bounded(app, world, live_server, synthetic_slide):
    """No worker runs the inspection: the command stops waiting, says so and does not claim success."""
    from pathology_hub.queue import huey
    huey.immediate = False
    try:
        base = ["upload", "--server", live_server, "--token", _token(app), "--case", "DEMO-2026-001"]
        r = app.test_cli_runner().invoke(args=[*base, "--wait", "0.5", str(synthetic_slide)])
        assert r.exit_code == 1, r.output
        assert "no verdict yet" in r.output and "1 pending" in r.output
        r = app.test_cli_runner().invoke(args=[*base, "--no-wait", "--allow-duplicate", str(synthetic_slide)])
        assert r.exit_code == 0, r.output
        assert "not waiting for the inspection" in r.output and "1 sent" in r.output
    finally:
        huey.immediate = True


def test_a_file_already_in_the_case_is_not_sent_again_unless_asked(app, world, live_server, synthetic_slide,
                                                                    tmp_path):
    """Issue 15 item 6: the same file uploaded again warns, links to the existing slide and sends nothing;
    --allow-duplicate attaches it deliberately. A different file of the same size is not mistaken for it."""
    from sqlalchemy import func
    token = _token(app)
    runner = app.test_cli_runner()
    base = ["upload", "--server", live_server, "--token", token, "--case", "DEMO-2026-001", "--no-wait"]
    assert runner.invoke(args=base + [str(synthetic_slide)]).exit_code == 0
    again = runner.invoke(args=base + [str(synthetic_slide)])
    assert again.exit_code == 1, again.output
    assert "already slide S1 of case DEMO-2026-001" in again.output and "#slide-" in again.output
    assert "--allow-duplicate" in again.output and "1 duplicate" in again.output
    world.expire_all()
    assert world.scalar(select(func.count(Slide.id))) == 1, "nothing was sent"
    same_size = tmp_path / "other.svs"
    data = bytearray(synthetic_slide.read_bytes())
    data[-1] ^= 0xFF
    same_size.write_bytes(bytes(data))
    other = runner.invoke(args=base + [str(same_size)])
    assert "already slide" not in other.output, other.output
    deliberate = runner.invoke(args=base + ["--allow-duplicate", str(synthetic_slide)])
    assert deliberate.exit_code == 0, deliberate.output
    world.expire_all()
    assert world.scalar(select(func.count(Slide.id))) == 3
