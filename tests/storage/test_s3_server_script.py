"""``scripts/s3-server`` must not report "ready" for a port another process answers on, and
must never signal a process that only reuses the number in one of its stale pid files.

Before the fix, a gateway of another cluster (or any HTTP server) on the port made
``start`` print "ready"/"already running" although its own radosgw never came up, and
the tests then talked to the wrong store.  This needs no Ceph: the port check comes
before the cluster is built, so the test takes well under a second.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading

import pytest

from tests.storage.conftest import S3_SERVER


def test_start_refuses_a_port_taken_by_another_server(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state = tmp_path / "s3"
    try:
        port = server.server_address[1]
        env = {**os.environ, "S3_SERVER_DIR": str(state), "S3_SERVER_PORT": str(port),
               "S3_SERVER_MON_PORT": "1"}  # never reached: start stops before the monitor
        started = subprocess.run([str(S3_SERVER), "start"], env=env, capture_output=True, text=True, timeout=60)
        status = subprocess.run([str(S3_SERVER), "status"], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    assert started.returncode != 0, started.stderr
    assert "ready on http" not in started.stderr and "already running on" not in started.stderr
    assert f"port {port} is already in use by another process" in started.stderr
    assert status.returncode != 0
    assert "another process answers" in status.stdout


@pytest.mark.parametrize("command", ["stop", "stop-rgw", "start"])
def test_a_stale_pid_file_never_kills_the_process_that_reuses_its_number(tmp_path, command):
    """A cluster's pid files outlive its daemons when /tmp is kept and processes are not (a machine
    restored from a snapshot). The numbers are then reused, and ``start`` (which stops a half-up
    cluster before rebuilding it) killed another cluster's monitor that had drawn the same pid:
    the 5-minute outage test then found its cluster gone. Only a process started with this
    cluster's conf may be signalled."""
    bystander = subprocess.Popen(["sleep", "600"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        state = tmp_path / "s3"
        (state / "run").mkdir(parents=True)
        for name in ("mon.a", "mgr.x", "osd.0", "rgw"):
            (state / "run" / f"{name}.pid").write_text(f"{bystander.pid}\n")
        # the port is taken, so "start" stops at the port check, after stopping the stale cluster
        env = {**os.environ, "S3_SERVER_DIR": str(state), "S3_SERVER_PORT": str(server.server_address[1]),
               "S3_SERVER_MON_PORT": "1"}
        subprocess.run([str(S3_SERVER), command], env=env, capture_output=True, text=True, timeout=120)
        status = subprocess.run([str(S3_SERVER), "status"], env=env, capture_output=True, text=True, timeout=60)
        assert bystander.poll() is None, f"s3-server {command} killed an unrelated process"
        assert status.returncode != 0 and "mon.a: stopped" in status.stdout, status.stdout
    finally:
        bystander.kill()
        bystander.wait()
        server.shutdown()
        server.server_close()
