"""Liveness and readiness probes for load balancers and hospital IT monitoring."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from .. import queue, runtime
from ..domain import health as health_checks

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz():
    """Each dependency is checked separately so the answer says which one is down."""
    checks: dict[str, dict] = {}

    def probe(name: str, fn) -> None:
        start = time.perf_counter()
        try:
            fn()
            checks[name] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks[name] = {"ok": False, "error": type(exc).__name__}
        checks[name]["ms"] = round((time.perf_counter() - start) * 1000, 1)

    probe("database", health_checks.check_database)
    probe("storage", lambda: runtime.store().ping())
    probe("queue", queue.ping)
    ready = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503
