"""``scripts/s3-server start`` must not report "ready" for a port another process answers on.

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
