"""A private Ceph RGW cluster for fault tests that stop the gateway.

The storage contract tests share one cluster (port 7480); a test that runs
``stop-rgw`` there would break every other test using it at that moment. Fault
modules therefore start a cluster of their own: ``scripts/s3-server`` reads
S3_SERVER_DIR / S3_SERVER_PORT / S3_SERVER_MON_PORT, which this helper sets per
call (defaults given by the module, overridable from the environment).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.storage.conftest import S3_SERVER


@dataclass(frozen=True)
class PrivateS3:
    directory: str
    port: int
    mon_port: int

    @classmethod
    def named(cls, name: str, port: int, mon_port: int) -> "PrivateS3":
        """``S3_SERVER_DIR`` etc. from the environment when set, else ``/tmp/hub-s3-<name>`` and the ports given."""
        return cls(os.environ.get("S3_SERVER_DIR", f"/tmp/hub-s3-{name}"),
                   int(os.environ.get("S3_SERVER_PORT", port)), int(os.environ.get("S3_SERVER_MON_PORT", mon_port)))

    def run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "S3_SERVER_DIR": self.directory, "S3_SERVER_PORT": str(self.port),
               "S3_SERVER_MON_PORT": str(self.mon_port)}
        return subprocess.run([str(S3_SERVER), *args], capture_output=True, text=True, timeout=timeout, env=env)

    def start(self) -> str:
        """Start (or reuse) the cluster; "" when running, else the reason."""
        try:
            started = self.run("start")
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"scripts/s3-server start failed: {exc}"
        if started.returncode != 0:
            return f"scripts/s3-server start exited {started.returncode}: {started.stderr[-2000:]}"
        return ""

    def storage_url(self) -> str:
        """A STORAGE_URL on a fresh bucket of this cluster."""
        for line in self.run("env").stdout.splitlines():
            if line.startswith("STORAGE_URL="):
                parts = urlsplit(line.split("=", 1)[1])
                return parts._replace(path=f"/fault-{uuid.uuid4().hex[:12]}").geturl()
        raise RuntimeError("scripts/s3-server env printed no STORAGE_URL")

    def stop_gateway(self) -> None:
        result = self.run("stop-rgw")
        assert result.returncode == 0, result.stderr

    def start_gateway(self) -> None:
        result = self.run("start-rgw")
        assert result.returncode == 0, result.stderr


def wait_reachable(store, timeout: float = 120.0) -> float:
    """Seconds until ``store.ping()`` succeeds again."""
    from storage.errors import StorageUnavailable
    started = time.monotonic()
    while True:
        try:
            store.ping()
            return time.monotonic() - started
        except StorageUnavailable:
            if time.monotonic() - started > timeout:
                raise
            time.sleep(0.2)
