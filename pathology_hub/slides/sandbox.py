"""Run the probe in a child process with a time and address-space limit.

A crafted slide can make a native decoder segfault, spin forever or allocate
without bound. ``subprocess`` gives the child its own address space, so a
crash there is just a non-zero exit status here; ``RLIMIT_AS`` (set by the
child itself before importing any decoder, which avoids ``preexec_fn`` and
its thread-safety caveats) caps memory, and the timeout kills it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from .errors import PROBE_CRASHED, PROBE_TIMEOUT, SlideRejected

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY_LIMIT = 2 << 30

#: Directory that contains the ``pathology_hub`` package, so the child can
#: import it however the parent was started.
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]

log = logging.getLogger(__name__)

def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_PACKAGE_ROOT) + (os.pathsep + existing if existing else "")
    # glibc reserves a 64 MiB malloc arena per decoder thread; capping them
    # keeps RLIMIT_AS a limit on memory used rather than address space reserved.
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def run_probe(
    command: str,
    path: str | Path,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
    out_dir: str | Path | None = None,
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run one probe command and return its ``result`` or raise SlideRejected."""
    argv = [
        sys.executable,
        "-m",
        "pathology_hub.slides.probe",  # the package root imports nothing, so no web app is loaded
        command,
        os.fspath(Path(path).resolve()),
        "--memory-limit",
        str(int(memory_limit)),
    ]
    if out_dir is not None:
        argv += ["--out", os.fspath(out_dir)]
    argv += extra_args or []
    # stderr goes to a file, not a pipe: a crafted file can make libtiff print
    # warnings without end, and only the tail is worth keeping for the log.
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                timeout=timeout,
                env=_child_env(),
                cwd=_PACKAGE_ROOT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            proc = None
        stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 2000))
        stderr_tail = stderr.read().decode("utf-8", "replace")
    if proc is None:
        # subprocess.run has already killed and reaped the child.
        raise SlideRejected(
            PROBE_TIMEOUT,
            f"Opening the file took longer than {timeout:g} seconds, so it was stopped. "
            "The file may be corrupt or crafted to hang the image decoder.",
        ) from None

    if proc.returncode < 0:
        log.warning("probe %s killed by %s: %s", command, _signal_name(proc.returncode), stderr_tail)
        raise SlideRejected(
            PROBE_CRASHED,
            f"The image decoder crashed while reading the file ({_signal_name(proc.returncode)}). "
            "The file is probably corrupt or crafted; it was rejected and nothing else was affected.",
        )
    try:
        payload = json.loads(proc.stdout.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        payload = None
    if proc.returncode != 0 or not isinstance(payload, dict):
        log.warning("probe %s exited %s: %s", command, proc.returncode, stderr_tail)
        raise SlideRejected(
            PROBE_CRASHED,
            f"The image decoder stopped unexpectedly (exit status {proc.returncode}) while "
            "reading the file, possibly because it ran out of memory; the file was rejected.",
        )
    if not payload.get("ok"):
        log.info("probe %s rejected the file (%s): %s", command, payload.get("code"), stderr_tail)
        raise SlideRejected(str(payload.get("code")), str(payload.get("message")), payload.get("params") or None)
    return payload["result"]
