"""The gunicorn access logger drops successful tile reads and keeps everything else."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from gunicorn.config import Config

from pathology_hub.web.access_log import HubAccessLogger


def _logged(monkeypatch, path: str, status: int, tiles_env: str = "") -> bool:
    monkeypatch.setenv("ACCESS_LOG_TILES", tiles_env)
    cfg = Config()
    cfg.set("accesslog", "-")
    logger = HubAccessLogger(cfg)
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())
    logger.access_log.handlers = [Collect()]
    resp = SimpleNamespace(status_code=status, status=f"{status} X", sent=10, headers=[], response_length=10)
    req = SimpleNamespace(headers=[], method="GET", path=path, query="", version=(1, 1), uri=path)
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "REMOTE_ADDR": "127.0.0.1", "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "RAW_URI": path}
    logger.access(resp, req, environ, __import__("datetime").timedelta(milliseconds=3))
    return bool(lines)


TILE = "/api/v1/tiles/" + "a" * 32 + "/v0/slide_files/12/3_4.jpeg"


def test_successful_tiles_are_not_logged_by_default(monkeypatch):
    assert not _logged(monkeypatch, TILE, 200)
    assert not _logged(monkeypatch, TILE, 304)


def test_failed_tiles_and_other_requests_are_logged(monkeypatch):
    assert _logged(monkeypatch, TILE, 404)
    assert _logged(monkeypatch, TILE, 503)
    assert _logged(monkeypatch, "/api/v1/cases", 200)


def test_tile_lines_can_be_switched_back_on(monkeypatch):
    assert _logged(monkeypatch, TILE, 200, tiles_env="1")
