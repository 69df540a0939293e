"""Gunicorn access logging without one line per tile.

A viewer fetches hundreds of tiles a minute; formatting and writing an access
line for each costs about as much as serving the tile and buries every other
request in the log. Who viewed which slide at which zoom is recorded by the
sampled view audit instead, and a failed tile request (4xx/5xx) is still
logged. ``ACCESS_LOG_TILES=1`` brings the per-tile lines back for debugging.
"""

from __future__ import annotations

import os

from gunicorn.glogging import Logger

TILE_PREFIX = "/api/v1/tiles/"


class HubAccessLogger(Logger):
    """gunicorn's logger, skipping successful tile reads unless ACCESS_LOG_TILES is set."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        self.log_tiles = os.environ.get("ACCESS_LOG_TILES", "").lower() in ("1", "true", "yes")

    def access(self, resp, req, environ, request_time) -> None:
        if (not self.log_tiles and resp.status_code in (200, 304)
                and environ.get("PATH_INFO", "").startswith(TILE_PREFIX)):
            return
        super().access(resp, req, environ, request_time)
